"""The protocol table's battery on planted item tables: values with a strong role trait pass,
values without one do not; the goal needs five passing values and matrix r >= .6; rank agreement
is 1 between a table and itself, -1 against its mirror."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mechvalue.analysis.protocol_table import battery, markdown, rank_agreement
from mechvalue.errors import MechValueError
from mechvalue.study.inventory import SCHWARTZ_VALUES


def planted(n_roles: int = 30, traited: int = 6, seed: int = 0) -> pd.DataFrame:
    """Roles x 10 values x 4 items; the first `traited` values carry a role's value profile (mean 0
    over them) under item noise (SD .3), the others noise alone; each role has an overall shift
    (acquiescence), which centring removes."""
    rng = np.random.default_rng(seed)
    rows = []
    for r in range(n_roles):
        shift, traits = rng.normal(0, 0.5), rng.normal(size=traited)
        traits = np.r_[traits - traits.mean(), np.zeros(len(SCHWARTZ_VALUES) - traited)]  # a profile, mean 0
        for k, v in enumerate(SCHWARTZ_VALUES):
            for i in range(4):
                rows.append(
                    {
                        "player_name": f"r{r}",
                        "value": v,
                        "item": f"{v}{i}",
                        "score": shift + traits[k] + rng.normal(0, 0.3),
                    }
                )
    return pd.DataFrame(rows)


def test_battery_counts_values_that_pass_and_the_goal():
    long = planted()
    s, vals = battery(long, None, None, n_boot=30, n_perm=50)
    passing = set(vals.loc[vals["passes"], "value"])
    assert passing == set(SCHWARTZ_VALUES[:6])
    assert s["n_pass"] == 6 and s["respondents"] == 30
    assert not s["goal"]  # no human reference: no matrix r
    human = long.pivot_table(index="player_name", columns="value", values="score")
    s2, _ = battery(long, human, None, n_boot=30, n_perm=50)
    assert s2["matrix_r"] == pytest.approx(1.0) and s2["goal"]
    md = markdown(pd.DataFrame([{"protocol": "x", "persona": "one-line", **s2, "items_per_s": 3.0}]))
    assert md.splitlines()[2].startswith("| x | one-line | 30 |") and "**met**" in md


def test_known_group_personas_as_their_own_respondents():
    long = planted(n_roles=4)
    long["player_name"] = long["player_name"].map({"r0": "A", "r1": "B", "r2": "C", "r3": "D"})
    groups = {
        "A": {"pair": "p", "higher": ["Power"]},
        "B": {"pair": "p", "higher": ["Tradition"]},
        "C": {"pair": "q", "higher": ["Hedonism"]},
        "D": {"pair": "q", "higher": ["Security"]},
    }
    s, _ = battery(long, None, groups, n_boot=0, n_perm=10)
    assert s["respondents"] == 4 and s["kg_predictions"] == 4


def test_rank_agreement():
    a = planted()
    mirror = a.assign(score=-a["score"])
    r = rank_agreement({"a": a, "m": mirror})
    assert r.loc["a", "a"] == pytest.approx(1.0) and r.loc["a", "m"] == pytest.approx(-1.0)


def test_protocols_cli_refuses_unknown_names(capsys):
    from mechvalue.cli.main import main

    assert main(["protocols", "--protocols", "study,nope", "--out", "x"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--protocols: unknown nope" in err
    with pytest.raises(MechValueError):
        from mechvalue.study.personas import persona_set

        persona_set("one-line", -1)


def test_measurement_status_and_the_reports_top_line(tmp_path):
    from types import SimpleNamespace

    from mechvalue.analysis.status import value_status as measurement_status
    from mechvalue.pipeline.report.top import measured

    rel = pd.DataFrame({"value": ["Power", "Tradition", "Hedonism"], "icc1_lo": [0.2, 0.01, np.nan]})
    cen = pd.DataFrame({"value": ["Power", "Tradition", "Hedonism"], "alpha": [0.8, 0.9, 0.5]})
    status = measurement_status(rel, cen)
    assert status == {
        "Power": "",
        "Tradition": "ICC(1) CI from 0.01",
        "Hedonism": "centred alpha 0.50, ICC(1) n/a",
    }
    assert measurement_status(rel, None)["Power"] == "centred alpha n/a"
    top = measured(SimpleNamespace(status=status), "calibrated")
    assert "protocol calibrated" in top and "1 of 3 pass: Power." in top
    assert "Fail: Tradition (ICC(1) CI from 0.01); Hedonism (centred alpha 0.50, ICC(1) n/a)." in top
