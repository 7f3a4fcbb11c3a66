"""Are the value scores measurements? Reliability and validity of per-item scores, roles as respondents.

Pure functions on long item tables (`measure`'s items.csv: player_name, value, item, score, ...) and
on human PVQ-40 answers, computed the same way for both:
- internal consistency per value: Cronbach's alpha (pingouin) and McDonald's omega total from a
  one-factor maximum-likelihood model (scikit-learn's FactorAnalysis on standardised items),
  each with a respondent-bootstrap percentile CI; on raw and on respondent-centred scores;
- persona sensitivity: ICC(1) (one-way random, single item; pingouin) = the share of item-score
  variance that lies between roles, with its F-based 95% CI;
- structural validity: the model's value correlation matrix across roles against the human one
  (matrix correlation, label-permutation p-value) and correlation against distance on Schwartz's circle;
- known-groups validity: contrasting personas (mechvalue/data/known_groups.json) against the
  direction theory predicts; hit rate and a one-sided sign test;
- robustness of form: Spearman correlation across roles, per value, between two forms' scores.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
import pingouin as pg
from scipy import stats

from mechvalue.analysis.noise import noise_for, varies
from mechvalue.analysis.status import ALPHA_MIN, ICC1_MIN, failing
from mechvalue.errors import MechValueError
from mechvalue.study.inventory import SCHWARTZ_VALUES

__all__ = ["ALPHA_MIN", "ICC1_MIN"]  # the thresholds of the one pass rule (mechvalue.analysis.status)
LONG_COLUMNS = ("player_name", "value", "item", "score")


# ---------------------------------------------------------------- inputs
def read_items(path: str | Path) -> pd.DataFrame:
    """A long item table (items.csv) with the columns LONG_COLUMNS; bad input -> MechValueError."""
    try:
        df = pd.read_csv(path)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise MechValueError(f"{path}: cannot read item table ({type(e).__name__}: {e})") from None
    return check_items(df, str(path))


def check_items(df: pd.DataFrame, src: str = "items") -> pd.DataFrame:
    missing = [c for c in LONG_COLUMNS if c not in df.columns]
    if missing:
        raise MechValueError(f"{src}: missing column(s) {', '.join(missing)}; need {', '.join(LONG_COLUMNS)}")
    score = pd.to_numeric(df["score"], errors="coerce")
    bad = score.isna() & df["score"].notna()
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise MechValueError(f"{src}: row {i + 2}, column 'score': {df['score'].iloc[i]!r} is not a number")
    return df.assign(score=score)


def respondents(long: pd.DataFrame, src: str = "items") -> pd.DataFrame:
    """Unsteered rows of named roles (the no-persona row and steered rows are not respondents)."""
    rows = long
    if "steer_dim" in rows.columns:
        rows = rows[rows["steer_dim"].isna()]
    rows = rows[rows["player_name"].notna()]
    n = rows["player_name"].nunique()
    if n < 3:
        raise MechValueError(f"{src}: {n} unsteered named roles in column 'player_name'; need at least 3")
    return rows


def center_scores(long: pd.DataFrame) -> pd.DataFrame:
    """Each respondent's item scores minus that respondent's mean over all its items: the PVQ's
    own correction for scale use (Schwartz's centred scores, "MRAT"). It removes a role-wide
    shift (acquiescence: a persona that says yes to everything) that otherwise passes for
    consistency within every value. A value whose every item gets one answer from all respondents
    is left out: centring would give its items one shared role shift, a perfect consistency made
    by the centring alone."""
    rows = respondents(long)
    fixed = rows.groupby(["value", "item"])["score"].transform("nunique").eq(1)
    flat = fixed.groupby(rows["value"]).transform("all")
    centred = rows.assign(score=rows["score"] - rows.groupby("player_name")["score"].transform("mean"))
    return centred[~flat]


def item_matrices(long: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """value -> respondents x items matrix of agreement-keyed scores."""
    rows = respondents(long)
    return {
        v: g.pivot_table(index="player_name", columns="item", values="score", aggfunc="mean", sort=False)
        for v, g in rows.groupby("value", sort=False)
    }


def human_item_matrices(path: str | Path, center: bool = False) -> dict[str, pd.DataFrame]:
    """value -> persons x items importance (7 - answer, 1..6; 0 and empty cells missing) from
    PVQ-40 answers (the smacof columns sd1, po1, ...); `center`: minus each person's mean over
    the 40 items (`center_scores`)."""
    from mechvalue.causal.human import CODES

    try:
        raw = pd.read_csv(path)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise MechValueError(f"{path}: cannot read PVQ-40 answers ({type(e).__name__}: {e})") from None
    cols = [c for c in raw.columns if c[:2] in CODES and c[2:].isdigit()]
    if len(cols) != 40:
        raise MechValueError(f"{path}: expected 40 PVQ item columns like 'sd1', found {len(cols)}")
    x = raw[cols].apply(pd.to_numeric, errors="coerce")
    x = 7 - x.where((x >= 1) & (x <= 6))
    if center:
        x = x.sub(x.mean(axis=1), axis=0)
    return {v: x[[c for c in cols if CODES[c[:2]] == v]] for v in SCHWARTZ_VALUES}


# ---------------------------------------------------------------- internal consistency
def cronbach_alpha(x: pd.DataFrame) -> float:
    """Cronbach's alpha over complete rows (listwise), pingouin; NaN under 2 items or 3 rows."""
    x = x.dropna()
    if x.shape[1] < 2 or len(x) < 3 or x.sum(axis=1).var() == 0:
        return float("nan")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(pg.cronbach_alpha(data=x, nan_policy="listwise")[0])


def mcdonald_omega(x: pd.DataFrame, seed: int = 0) -> float:
    """McDonald's omega total from a one-factor ML model on standardised items:
    (sum lambda)^2 / ((sum lambda)^2 + sum psi). NaN under 3 items (the model is not identified),
    3 complete rows, or a constant item."""
    from sklearn.decomposition import FactorAnalysis

    x = x.dropna().to_numpy(dtype=float)
    if x.shape[1] < 3 or len(x) < 3:
        return float("nan")
    sd = x.std(axis=0)
    if (sd < 1e-12).any():
        return float("nan")
    z = (x - x.mean(axis=0)) / sd
    fa = FactorAnalysis(n_components=1, svd_method="lapack", random_state=seed).fit(z)  # exact SVD: small p
    lam, psi = fa.components_[0], np.clip(fa.noise_variance_, 0, None)
    common = lam.sum() ** 2
    return float(common / (common + psi.sum()))


def _boot_ci(x: pd.DataFrame, fn, n_boot: int, rng: np.random.Generator, level: float = 0.95):
    """Percentile CI of fn over respondent (row) resamples; NaN resamples dropped."""
    if n_boot <= 0:
        return float("nan"), float("nan")
    arr = x.to_numpy()
    vals = [
        fn(pd.DataFrame(arr[rng.integers(0, len(arr), len(arr))], columns=x.columns)) for _ in range(n_boot)
    ]
    vals = np.asarray(vals, dtype=float)
    vals = vals[np.isfinite(vals)]
    if len(vals) < max(10, n_boot // 2):
        return float("nan"), float("nan")
    lo, hi = np.quantile(vals, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def consistency(mats: dict[str, pd.DataFrame], n_boot: int = 200, seed: int = 0) -> pd.DataFrame:
    """Per value: items, respondents, alpha and omega with respondent-bootstrap 95% CIs."""
    rng = np.random.default_rng(seed)
    rows = []
    for v, x in mats.items():
        a_lo, a_hi = _boot_ci(x, cronbach_alpha, n_boot, rng)
        o_lo, o_hi = _boot_ci(x, mcdonald_omega, n_boot, rng)
        rows.append(
            {
                "value": v,
                "n_items": x.shape[1],
                "n_respondents": int(len(x.dropna())),
                "alpha": cronbach_alpha(x),
                "alpha_lo": a_lo,
                "alpha_hi": a_hi,
                "omega": mcdonald_omega(x),
                "omega_lo": o_lo,
                "omega_hi": o_hi,
            }
        )
    return pd.DataFrame(rows)


# ---------------------------------------------------------------- persona sensitivity
def icc1(x: pd.DataFrame) -> dict:
    """ICC(1) (one-way random, single item) of a respondents x items matrix: the share of score
    variance between respondents, with its 95% CI; ICC(1,k) for the mean over the k items."""
    x = x.dropna()
    nan = {"icc1": float("nan"), "icc1_lo": float("nan"), "icc1_hi": float("nan"), "icc1k": float("nan")}
    if x.shape[1] < 2 or len(x) < 3 or float(np.nanvar(x.to_numpy())) == 0:
        return nan
    data = x.rename_axis(index="target", columns="rater").stack().rename("rating").reset_index()
    data["rater"] = data["rater"].astype(str)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t = pg.intraclass_corr(data=data, targets="target", raters="rater", ratings="rating").set_index(
            "Type"
        )
    ci_col = next(c for c in t.columns if c.startswith("CI"))
    lo, hi = t.loc["ICC(1,1)", ci_col]
    return {
        "icc1": float(t.loc["ICC(1,1)", "ICC"]),
        "icc1_lo": float(lo),
        "icc1_hi": float(hi),
        "icc1k": float(t.loc["ICC(1,k)", "ICC"]),
    }


def reliability(
    long: pd.DataFrame, n_boot: int = 200, seed: int = 0, noise: float | dict = 0.0
) -> pd.DataFrame:
    """Per value: alpha, omega (bootstrap CIs), ICC(1) (CI), ICC(1,k), the score's between-role SD,
    and `varies`: whether that SD exceeds the measurement noise (`noise`: the noise model of
    mechvalue.analysis.noise, or one number for every value). A value that does not vary has no
    between-role variance: its alpha, omega and ICC(1) would describe noise (ICC(1) = -1/(k-1) on
    identical rows), so they are left undefined (NaN). Whether a value passes is
    `mechvalue.analysis.status.value_status` of this table and its centred twin."""
    mats = item_matrices(long)
    out = consistency(mats, n_boot, seed)
    icc = pd.DataFrame([{"value": v, **icc1(x)} for v, x in mats.items()])
    out = out.merge(icc, on="value")
    out["role_sd"] = [float(x.mean(axis=1).std()) for x in mats.values()]
    out["varies"] = [varies(noise, v, sd) for v, sd in zip(out["value"], out["role_sd"])]
    stats_cols = [c for c in out.columns if c.split("_")[0] in ("alpha", "omega", "icc1", "icc1k")]
    out.loc[~out["varies"], stats_cols] = np.nan
    return out


def graph_warnings(nodes: list[str], edges: list[tuple[str, str]], status: dict[str, str]) -> dict:
    """The graph's nodes and edges that rest on a value that fails the pass rule (`status`:
    `mechvalue.analysis.status.value_status`)."""
    flagged = failing(status)
    return {
        "thresholds": {"alpha": ALPHA_MIN, "icc1": ICC1_MIN},
        "flagged_values": {v: flagged[v] for v in nodes if v in flagged},
        "nodes": [v for v in nodes if v in flagged],
        "edges": [[a, b] for a, b in edges if a in flagged or b in flagged],
        "edges_total": len(edges),
    }


# ---------------------------------------------------------------- structural validity
def value_scores(long: pd.DataFrame) -> pd.DataFrame:
    """Respondents x values: mean agreement-keyed item score."""
    rows = respondents(long)
    return rows.pivot_table(index="player_name", columns="value", values="score", aggfunc="mean", sort=False)


def human_value_scores(path: str | Path) -> pd.DataFrame:
    mats = human_item_matrices(path)
    return pd.DataFrame({v: x.mean(axis=1) for v, x in mats.items()}).dropna()


def circle_distance(a: str, b: str) -> int:
    """Steps between two values around Schwartz's circle (0..5)."""
    i, j = SCHWARTZ_VALUES.index(a), SCHWARTZ_VALUES.index(b)
    return min(abs(i - j), len(SCHWARTZ_VALUES) - abs(i - j))


def _lower(m: np.ndarray) -> np.ndarray:
    return m[np.tril_indices_from(m, -1)]


def _varying(corr: pd.DataFrame, vals: list[str]) -> list[str]:
    """The values of `vals` whose correlations are defined: a value every respondent scores the
    same (SmolLM2's generated answers to Universalism are all "no") has none, and is left out."""
    return [v for v in vals if np.isfinite(corr.loc[v, v])]


def matrix_correlation(a: pd.DataFrame, b: pd.DataFrame, n_perm: int = 5000, seed: int = 0) -> dict:
    """Pearson r between the off-diagonal cells of two correlation matrices over their common
    values, and the one-sided label-permutation p-value (rows and columns of b permuted together)."""
    common = _varying(b, _varying(a, [v for v in a.columns if v in set(b.columns)]))
    if len(common) < 4:
        return {"values": common, "r": float("nan"), "p": float("nan"), "n_perm": 0}
    ma, mb = a.loc[common, common].to_numpy(), b.loc[common, common].to_numpy()
    la = _lower(ma)
    if not (np.isfinite(la).all() and np.isfinite(_lower(mb)).all()) or la.std() == 0:
        return {"values": common, "r": float("nan"), "p": float("nan"), "n_perm": 0}
    r = float(np.corrcoef(la, _lower(mb))[0, 1])
    rng = np.random.default_rng(seed)
    null = np.empty(n_perm)
    for i in range(n_perm):
        p = rng.permutation(len(common))
        null[i] = np.corrcoef(la, _lower(mb[np.ix_(p, p)]))[0, 1]
    return {"values": common, "r": r, "p": float((1 + (null >= r).sum()) / (1 + n_perm)), "n_perm": n_perm}


def circle_structure(corr: pd.DataFrame, n_perm: int = 5000, seed: int = 0) -> dict:
    """Do correlations fall with distance on Schwartz's circle? Spearman rho between each pair's
    correlation and its distance (negative = as theory predicts), one-sided label-permutation
    p-value, and the mean correlation at each distance."""
    vals = _varying(corr, [v for v in SCHWARTZ_VALUES if v in corr.columns])
    if len(vals) < 4:
        return {"values": vals, "rho": float("nan"), "p": float("nan"), "mean_r_by_distance": {}}
    m = corr.loc[vals, vals].to_numpy()
    d = np.array([[circle_distance(a, b) for b in vals] for a in vals])
    lr, ld = _lower(m), _lower(d)
    if not np.isfinite(lr).all() or lr.std() == 0:
        return {"values": vals, "rho": float("nan"), "p": float("nan"), "mean_r_by_distance": {}}
    rho = float(stats.spearmanr(lr, ld)[0])
    rng = np.random.default_rng(seed)
    null = np.empty(n_perm)
    for i in range(n_perm):
        p = rng.permutation(len(vals))
        null[i] = stats.spearmanr(_lower(m[np.ix_(p, p)]), ld)[0]
    by = {int(k): float(lr[ld == k].mean()) for k in sorted(set(ld))}
    return {
        "values": vals,
        "rho": rho,
        "p": float((1 + (null <= rho).sum()) / (1 + n_perm)),
        "mean_r_by_distance": by,
        "n_perm": n_perm,
    }


def structure(
    long: pd.DataFrame, human: pd.DataFrame | None = None, n_perm: int = 5000, seed: int = 0
) -> dict:
    """Structural validity: the model's correlation matrix across roles against the human one
    (`human`: persons x values scores), and each one's correlation-distance relation."""
    cm = value_scores(long).corr()
    out = {"model_circle": circle_structure(cm, n_perm, seed), "model_corr": _matrix_json(cm)}
    if human is not None:
        ch = human.corr()
        out["human_circle"] = circle_structure(ch, n_perm, seed)
        out["model_vs_human"] = matrix_correlation(cm, ch, n_perm, seed)
        out["human_corr"] = _matrix_json(ch)
    return out


def _matrix_json(m: pd.DataFrame) -> dict:
    return {
        str(k): {str(c): (None if pd.isna(x) else float(x)) for c, x in row.items()}
        for k, row in m.iterrows()
    }


# ---------------------------------------------------------------- known groups
def known_groups_path() -> Path:
    """The shipped contrasting personas (load_players format, plus `pair` and `higher`)."""
    return Path(str(resources.files("mechvalue.data") / "known_groups.json"))


def load_known_groups(path: str | Path | None = None) -> dict:
    path = Path(path) if path else known_groups_path()
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise MechValueError(f"{path}: cannot read known groups ({e})") from None
    pairs: dict[str, list[str]] = {}
    for name, p in data.items():
        if not isinstance(p, dict) or not {"mini_trait", "pair", "higher"} <= set(p):
            raise MechValueError(f"{path}: persona {name!r} needs mini_trait, pair and higher")
        pairs.setdefault(p["pair"], []).append(name)
    bad = {k: v for k, v in pairs.items() if len(v) != 2}
    if bad:
        raise MechValueError(f"{path}: each pair needs exactly 2 personas, got {bad}")
    return data


def known_group_predictions(groups: dict) -> pd.DataFrame:
    """One row per prediction: pair, value, the persona predicted higher and the one lower."""
    by_pair: dict[str, list[str]] = {}
    for name, p in groups.items():
        by_pair.setdefault(p["pair"], []).append(name)
    rows = []
    for pair, (a, b) in by_pair.items():
        for hi, lo in ((a, b), (b, a)):
            rows += [{"pair": pair, "value": v, "higher": hi, "lower": lo} for v in groups[hi]["higher"]]
    return pd.DataFrame(rows)


def known_groups(long: pd.DataFrame, groups: dict, min_diff: float | dict = 0.0) -> tuple[pd.DataFrame, dict]:
    """Per prediction the two personas' value scores and whether the predicted one is higher by
    more than the measurement noise (`min_diff`: the noise model of mechvalue.analysis.noise, or
    one number; a smaller difference is a tie, and ties miss); summary: hit rate, the one-sided
    sign-test p-value (binomial, p = 1/2) and how many differences were within the noise."""
    typical = noise_for(min_diff)
    rows = long[long["player_name"].isin(list(groups))]
    if "steer_dim" in rows.columns:
        rows = rows[rows["steer_dim"].isna()]
    scores = rows.pivot_table(index="player_name", columns="value", values="score", aggfunc="mean")
    pred = known_group_predictions(groups)
    ok = (
        pred["higher"].isin(scores.index)
        & pred["lower"].isin(scores.index)
        & pred["value"].isin(scores.columns)
    )
    pred = pred[ok].reset_index(drop=True)
    if pred.empty:
        return pred, {
            "predictions": 0,
            "hits": 0,
            "hit_rate": float("nan"),
            "p_sign": float("nan"),
            "min_diff": typical,
            "within_noise": 0,
        }
    pred["score_higher"] = [scores.loc[h, v] for h, v in zip(pred["higher"], pred["value"])]
    pred["score_lower"] = [scores.loc[lo, v] for lo, v in zip(pred["lower"], pred["value"])]
    diff = pred["score_higher"] - pred["score_lower"]
    pred["noise"] = [noise_for(min_diff, v) for v in pred["value"]]
    pred["within_noise"] = diff.abs() <= pred["noise"]
    pred["hit"] = diff > pred["noise"]
    n, k = len(pred), int(pred["hit"].sum())
    p = float(stats.binomtest(k, n, 0.5, alternative="greater").pvalue)
    return pred, {
        "predictions": n,
        "hits": k,
        "hit_rate": k / n,
        "p_sign": p,
        "pairs": int(pred["pair"].nunique()),
        "min_diff": typical,
        "within_noise": int(pred["within_noise"].sum()),
    }


# ---------------------------------------------------------------- robustness of form
def form_robustness(base: pd.DataFrame, forms: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Per value and form: Spearman rho across the roles both tables share between the base
    form's value scores and that form's (NaN where either is constant)."""
    b = value_scores(base)
    rows = []
    for name, long in forms.items():
        o = value_scores(long)
        common = [r for r in b.index if r in set(o.index)]
        for v in b.columns:
            if v not in o.columns:
                continue
            x, y = b.loc[common, v].to_numpy(float), o.loc[common, v].to_numpy(float)
            ok = len(common) >= 3 and np.std(x) > 0 and np.std(y) > 0
            rows.append(
                {
                    "form": name,
                    "value": v,
                    "roles": len(common),
                    "rho": float(stats.spearmanr(x, y)[0]) if ok else float("nan"),
                }
            )
    return pd.DataFrame(rows, columns=["form", "value", "roles", "rho"])


# ---------------------------------------------------------------- everything for one table
@dataclass(frozen=True)
class BatterySettings:
    """How the battery draws its intervals and tests, and the noise that ties differences."""

    n_boot: int = 200
    """respondent resamples for the alpha/omega intervals"""
    n_perm: int = 5000
    """permutations of the structure tests"""
    seed: int = 0
    noise: float | dict = 0.0
    """the measurement noise (mechvalue.analysis.noise's model, or one number for every value):
    values whose between-role SD does not exceed it get no reliability figures, and known-group
    differences within it are ties"""


def validity(
    long: pd.DataFrame,
    human_path: str | Path | None = None,
    forms: dict[str, pd.DataFrame] | None = None,
    groups: dict | None = None,
    settings: BatterySettings = BatterySettings(),
) -> dict:
    """All checks for one item table: reliability (+ human), structure, known groups, forms."""
    n_boot, n_perm, seed, noise = settings.n_boot, settings.n_perm, settings.seed, settings.noise
    long = check_items(long)
    if groups is not None:  # the known-group personas are extremes, not a sample of respondents
        long, kg = long[~long["player_name"].isin(list(groups))], long
    res: dict = {"noise": noise_for(noise), "reliability": reliability(long, n_boot, seed, noise)}
    centred = center_scores(long)
    if len(centred):  # empty when every value gets one answer per item from all roles
        res["reliability_centered"] = reliability(centred, n_boot, seed, noise)
    human = None
    if human_path is not None:
        res["human"] = consistency(human_item_matrices(human_path), n_boot, seed)
        res["human_centered"] = consistency(human_item_matrices(human_path, center=True), n_boot, seed)
        human = human_value_scores(human_path)
    res["structure"] = structure(long, human, n_perm, seed)
    if groups is not None:
        res["known_groups"], res["known_groups_summary"] = known_groups(kg, groups, noise)
    if forms:
        res["forms"] = form_robustness(long, forms)
    return res
