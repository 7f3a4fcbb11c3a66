import pandas as pd
import pytest

from mechvalue.errors import MechValueError
from mechvalue.study import inventory as inv
from tests.conftest import need_shared


def _write(tmp_path, rows, columns=inv.COLUMNS):
    p = tmp_path / "inv.csv"
    pd.DataFrame(rows, columns=list(columns)).to_csv(p, index=False)
    return p


def test_shipped_inventory_is_valid_and_balanced():
    df = inv.load_inventory()
    assert set(df["value"]) == set(inv.SCHWARTZ_VALUES)
    assert df.groupby("value").size().eq(4).all()
    assert set(df["agreement"]) == {1, -1}


def test_valuebench_pvq40_selection():
    df = inv.load_inventory(need_shared("valuebench", "value_orientation.csv"))
    pvq = inv.select(df, ["PVQ40"])
    assert len(pvq) == 40 and set(pvq["value"]) == set(inv.SCHWARTZ_VALUES)
    # the study's selection: values with >= 20 items
    big = inv.select(df, min_items=20)
    assert big["value"].nunique() == 17 and len(big) == 366


@pytest.mark.parametrize(
    "rows,columns,needle",
    [
        ([("Q", "i", "V", "1")], ("questionnaire", "item", "value", "agreement"), "missing column"),
        ([("Q", "i", "V", "2", "q?")], inv.COLUMNS, "row 2, column 'agreement'"),
        ([("Q", "i", "V", "1", "q?"), ("Q", "i", "V", "-1", " ")], inv.COLUMNS, "row 3, column 'question'"),
    ],
)
def test_bad_files_name_row_and_column(tmp_path, rows, columns, needle):
    p = _write(tmp_path, rows, columns)
    with pytest.raises(MechValueError, match=needle) as e:
        inv.load_inventory(p)
    assert str(p) in str(e.value)


def test_unknown_value_is_named():
    with pytest.raises(MechValueError, match="Wisdom"):
        inv.select(inv.load_inventory(), values=["Wisdom"])


def test_split_is_seeded_and_per_value():
    df = inv.load_inventory()
    a_tr, a_te = inv.split(df, seed=3)
    b_tr, b_te = inv.split(df, seed=3)
    c_tr, _ = inv.split(df, seed=4)
    pd.testing.assert_frame_equal(a_tr, b_tr)
    assert not a_tr.equals(c_tr)
    assert a_tr.groupby("value").size().eq(int(0.7 * 4)).all()
    assert len(a_tr) + len(a_te) == len(df)


def test_role_subset_matches_study_rule():
    df = inv.load_inventory()
    sub = inv.role_subset(df, "Mary Holt")
    assert sub.groupby("value").size().eq(2).all()  # ceil(0.4 * 4)
    assert sub.equals(inv.role_subset(df, "Mary Holt"))
