"""Every steering method on the same held-out value test, with its costs (issue 20).

Methods: prompting (the hard prompt "inclined to V", the reference), DiffMean and CAA vectors
(`mechvalue.interp.vectors`), and the best SAE feature per value chosen three ways (the study's
top activation at " your values", correlation across roles, gradient attribution). Vectors,
features and feature choices come from the TRAIN items and roles only (the study's seeded 0.7
split, and the same split of roles); every metric is measured on the TEST items and roles only.

Units: vector strengths in residual-norm units (`vectors.residual_norm`), SAE strengths in the
feature's typical activation (as the steering grid); score changes in between-role SD units
(the SD of the unsteered test roles' scores of that value). Statistics need at least
`MIN_ROLES` roles; below that they are NaN with the note "too few roles".
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal, get_args

import numpy as np
import pandas as pd
import torch
from jaxtyping import Float, Int
from scipy import stats
from torch import Tensor
from tqdm.auto import tqdm

from mechvalue.causal.compare import random_graph_like
from mechvalue.causal.graph import Edge, ValueGraph
from mechvalue.errors import MechValueError
from mechvalue.interp import vectors as vec
from mechvalue.io import save_torch, write_csv, write_json
from mechvalue.lm.batching import StudyWhere, left_pad
from mechvalue.lm.generation import greedy_generate
from mechvalue.lm.hooks import installed, per_call
from mechvalue.lm.models import as_bridge, model_device
from mechvalue.measure.grid import value_definitions
from mechvalue.measure.scoring import Condition, Measurer, measure
from mechvalue.study.inventory import SCHWARTZ_VALUES, split
from mechvalue.study.prompts import HardPrompt, bio_hint
from mechvalue.study.roles import Role
from mechvalue.study.schema import by_role

MIN_ROLES = 8  # below this many roles a statistic is "too few roles", not a number
Method = Literal["prompting", "diffmean", "caa", "sae_span", "sae_corr", "sae_grad"]
METHODS: tuple[str, ...] = get_args(Method)
SAE_METHODS = ("sae_span", "sae_corr", "sae_grad")

# Fixed neutral material for the fluency cost: never mentions values.
NEUTRAL_PROMPTS = [
    "Explain how to boil an egg.",
    "Describe the water cycle in a few sentences.",
    "Write a short paragraph about a train journey through the mountains.",
    "What is a prime number? Give an example.",
    "Give three tips for keeping a houseplant alive.",
    "Describe how a bicycle works.",
    "Summarise the rules of chess in a few sentences.",
    "Write a short note about the weather in autumn.",
]
NEUTRAL_TEXT = [
    "The train left the station at seven in the morning. Outside the window, fields of wheat gave way "
    "to low hills, and a river followed the tracks for most of the journey.",
    "To make bread, mix flour, water, salt and yeast into a dough. Knead it for ten minutes, let it "
    "rise for an hour, shape it into a loaf and bake it in a hot oven until the crust is brown.",
    "A prime number has exactly two divisors: one and itself. The first few primes are two, three, "
    "five, seven and eleven, and there are infinitely many of them.",
    "The museum opens at nine and closes at five. Tickets can be bought at the entrance, and the "
    "guided tour of the main hall takes about forty minutes.",
    "Water boils at one hundred degrees Celsius at sea level. At higher altitudes the air pressure "
    "is lower, so water boils at a lower temperature.",
    "The bicycle has two wheels, a frame, pedals and a chain. Turning the pedals moves the chain, "
    "which turns the rear wheel and pushes the bicycle forward.",
]


@dataclass
class CompareSpec:
    values: list[str] | None = None  # targets (None: every value of the items)
    methods: list[str] = field(default_factory=lambda: list(METHODS))
    vector_strengths: list[float] = field(default_factory=lambda: [0.25, 0.5, 1.0])  # residual-norm units
    sae_strengths: list[float] = field(default_factory=lambda: [4.0, 8.0, 16.0])  # typical activations
    where: StudyWhere = "all"
    hook: str = ""  # where vectors steer without an SAE (with one: the SAE's hook)
    vector_roles: int = 4  # train roles (with the no-role prompt) that build DiffMean / CAA / the unit
    corr_roles: int = 12  # train roles measured for the correlation choice
    grad_roles: int = 8  # train roles for the gradient-attribution choice
    candidates: int = 8  # the study's rule: features most active on " your values"
    neutral_prompts: int = 4
    neutral_texts: int = 4
    gen_tokens: int = 40
    kl_bound: float = 0.25  # admissible: mean KL(unsteered || steered) on neutral text <= this (nats/token)
    n_boot: int = 500
    n_null: int = 200
    batch_size: int = 32
    seed: int = 0

    def check(self) -> None:
        bad = [m for m in self.methods if m not in METHODS]
        if bad:
            raise MechValueError(f"unknown method(s) {bad}: use {', '.join(METHODS)}")
        vec.check_where(self.where)
        if self.where in ("span", "generated"):
            raise MechValueError(f"where={self.where!r}: the comparison steers at 'prompt' or 'all' (DiffMean is "
                                 "zero at the span, and the value test has no generated tokens)")  # fmt: skip

    def strengths(self, method: str) -> list[float]:
        if method == "prompting":
            return [1.0]
        return list(self.vector_strengths if method in ("diffmean", "caa") else self.sae_strengths)


def split_roles(roles: list[Role], seed: int = 0, train_frac: float = 0.7) -> tuple[list[Role], list[Role]]:
    """Seeded split of the named roles, as `inventory.split` splits items."""
    idx = list(range(len(roles)))
    random.Random(seed).shuffle(idx)
    k = int(train_frac * len(roles))
    return [roles[i] for i in sorted(idx[:k])], [roles[i] for i in sorted(idx[k:])]


# ---------------------------------------------------------------- fluency: pure parts, tested by hand
def perplexity(logits: Float[Tensor, "n vocab"], targets: Int[Tensor, " n"]) -> float:
    """exp(mean negative log-likelihood of `targets` under `logits`)."""
    nll = -torch.log_softmax(logits.double(), -1).gather(-1, targets[:, None].long())[:, 0]
    return float(nll.mean().exp())


def mean_kl(p_logits: Float[Tensor, "n vocab"], q_logits: Float[Tensor, "n vocab"]) -> float:
    """Mean over rows of KL(P || Q) in nats, P = softmax(p_logits), Q = softmax(q_logits)."""
    lp, lq = torch.log_softmax(p_logits.double(), -1), torch.log_softmax(q_logits.double(), -1)
    return float((lp.exp() * (lp - lq)).sum(-1).mean())


def _ci(x: np.ndarray, rng: np.random.Generator, n_boot: int, stat=np.mean) -> tuple[float, float]:
    if len(x) < 2:
        return float("nan"), float("nan")
    b = np.array([stat(x[rng.integers(0, len(x), len(x))]) for _ in range(n_boot)])
    return tuple(float(v) for v in np.nanpercentile(b, [2.5, 97.5]))


def _hint_text(value: str) -> str:
    return bio_hint(None, HardPrompt(value, value_definitions().get(value, value.lower()), 1))


def _chat(tok, text: str) -> list[int]:
    if getattr(tok, "chat_template", None):
        s = tok.apply_chat_template(
            [{"role": "user", "content": text}], tokenize=False, add_generation_prompt=True
        )
        return tok.encode(s, add_special_tokens=False)
    return tok.encode(f"Question: {text}\nAnswer:")


@torch.no_grad()
def _logits(model, seqs: list[list[int]], hooks: list) -> Float[Tensor, "batch pos vocab"]:
    """Full next-token logits (left-padded) with positioned `hooks` editing every real token."""
    bridge = as_bridge(model)
    toks, attn = left_pad(seqs, bridge.tokenizer.pad_token_id or 0, model_device(bridge))
    kw = {"attention_mask": attn, "position_ids": (attn.cumsum(-1) - 1).clamp(min=0), "use_cache": False}
    with installed(bridge, per_call(hooks, attn.bool())):
        return bridge(toks, **kw).float().cpu()


def fluency(model, hooks: list, hint: str | None, spec: CompareSpec, rng: np.random.Generator) -> dict:
    """Perplexity (under the unsteered model, given the plain prompt) of greedy steered
    generations of the neutral prompts, and mean KL(unsteered || steered) next-token on neutral
    text; prompting = the hint before the prompt / text. Also steered forwards/s relative to
    unsteered (median of 3 interleaved timings)."""
    tok = as_bridge(model).tokenizer
    prompts = NEUTRAL_PROMPTS[: spec.neutral_prompts]
    plain = [_chat(tok, p) for p in prompts]
    steer_in = [_chat(tok, hint + p) for p in prompts] if hint else plain
    masks = left_pad(steer_in, 0)[1].bool()
    new = greedy_generate(model, steer_in, spec.gen_tokens, {tok.eos_token_id}, hooks, masks, True)
    ppl = []
    for p, g in zip(plain, new):
        if not g:
            continue
        lg = _logits(model, [p + g], [])[0, len(p) - 1 : -1]
        ppl.append(perplexity(lg, torch.tensor(g)))
    texts = [tok.encode(t, add_special_tokens=False) for t in NEUTRAL_TEXT[: spec.neutral_texts]]
    base = _logits(model, texts, [])
    pre = tok.encode(hint, add_special_tokens=False) if hint else []
    seqs = [pre + t for t in texts]
    steered = _logits(model, seqs, hooks)
    w, ws = base.shape[1], steered.shape[1]
    kls = np.array([mean_kl(base[i, w - len(t) :], steered[i, ws - len(t) :]) for i, t in enumerate(texts)])
    times = {"a": [], "b": []}
    for _ in range(3):  # A, B, A, B, ...: unsteered then steered forward on the same text
        for k, (ss, hk) in (("a", (texts, [])), ("b", (seqs, hooks))):
            t0 = time.perf_counter()
            _logits(model, ss, hk)
            times[k].append(time.perf_counter() - t0)
    ppl = np.array(ppl)
    return {"ppl": float(np.exp(np.log(ppl).mean())) if len(ppl) else float("nan"),
            "ppl_ci": _ci(ppl, rng, spec.n_boot, lambda x: np.exp(np.log(x).mean())), "ppl_n": len(ppl),
            "kl": float(kls.mean()), "kl_ci": _ci(kls, rng, spec.n_boot), "kl_n": len(kls),
            "speed": float(np.median(times["a"]) / np.median(times["b"])), "speed_n": 3,
            "generations": tok.batch_decode(new, skip_special_tokens=True)}  # fmt: skip


# ---------------------------------------------------------------- metrics on the test roles
def _too_few(n: int) -> str:
    return f"too few roles (n={n} < {MIN_ROLES})" if n < MIN_ROLES else ""


def _desc_gap(d: pd.DataFrame, target: str, graph: ValueGraph) -> float:
    """Mean |change| on the target's graph descendants minus on the other values (SD units)."""
    others = [v for v in d.columns if v != target]
    desc = [v for v in others if v in graph.descendants(target)]
    rest = [v for v in others if v not in desc]
    if not desc or not rest:
        return float("nan")
    a = d.abs()
    return float(a[desc].to_numpy().mean() - a[rest].to_numpy().mean())


def effect_metrics(base: pd.DataFrame, steered: pd.DataFrame, target: str, graph: ValueGraph | None = None,
                   n_boot: int = 500, n_null: int = 200, seed: int = 0) -> dict:  # fmt: skip
    """Efficacy, share moved up, off-target change, selectivity and the descendants gap for one
    condition; `base`/`steered`: test roles x values (same roles). Score changes are divided by
    each value's between-role SD of `base` (fixed in the bootstrap); CIs resample roles."""
    roles = [r for r in base.index if r in steered.index]
    n = len(roles)
    out = {"n_roles": n, "note": _too_few(n)}
    nan = float("nan")
    keys = ["efficacy", "efficacy_lo", "efficacy_hi", "share_up", "share_up_lo", "share_up_hi", "off_target",
            "off_target_lo", "off_target_hi", "selectivity", "selectivity_lo", "selectivity_hi",
            "desc_gap", "desc_gap_null", "desc_gap_p", "target_change", "sd_target"]  # fmt: skip
    out |= dict.fromkeys(keys, nan)
    if out["note"]:
        return out
    b, s = base.loc[roles].astype(float), steered.loc[roles].astype(float)
    sd = b.std(ddof=1)
    if not sd[target] > 0:
        out["note"] = f"{target} does not vary across the unsteered test roles"
        return out
    d = (s - b) / sd.where(sd > 0)
    d = d.dropna(axis=1, how="all")
    others = [v for v in d.columns if v != target]
    t, off = d[target].to_numpy(), d[others].abs().to_numpy()
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, (n_boot, n))
    eff_b, off_b = t[idx].mean(1), off[idx].mean((1, 2))
    k = int(((s - b)[target] > 0).sum())
    ci = stats.binomtest(k, n).proportion_ci(method="wilson")
    out |= {"target_change": float((s - b)[target].mean()), "sd_target": float(sd[target])}  # score units
    out |= {"efficacy": float(t.mean()), "share_up": k / n, "share_up_lo": ci.low, "share_up_hi": ci.high,
            "off_target": float(off.mean()), "selectivity": float(t.mean() / off.mean()) if off.mean() > 0 else nan}  # fmt: skip
    with np.errstate(divide="ignore", invalid="ignore"):
        sel_b = eff_b / off_b  # NaN where nothing moved at all (strength 0)
    for name, bs in (("efficacy", eff_b), ("off_target", off_b), ("selectivity", sel_b)):
        if np.isfinite(bs).any():
            out[f"{name}_lo"], out[f"{name}_hi"] = (float(v) for v in np.nanpercentile(bs, [2.5, 97.5]))
    if graph is not None:
        g = graph if set(d.columns) <= set(graph.nodes) else None
        if g is not None:
            gap = _desc_gap(d, target, g)
            null = np.array([_desc_gap(d, target, random_graph_like(g, rng)) for _ in range(n_null)])
            out["desc_gap"] = gap
            if np.isfinite(gap) and np.isfinite(null).any():
                null = null[np.isfinite(null)]
                out["desc_gap_null"] = float(null.mean())
                out["desc_gap_p"] = float((1 + (null >= gap).sum()) / (1 + len(null)))
    return out


def value_graph(
    values: list[str], human: str | None = None, graph: str | None = None
) -> tuple[ValueGraph, str]:
    """The graph whose descendants the side effects are checked against: a saved graph, the human
    PVQ-40 graph, or Schwartz's circle (neighbours linked)."""
    from mechvalue.causal.graph import load_graph

    if graph:
        return load_graph(graph), str(graph)
    if human:
        from mechvalue.causal.human import human_graph

        g = human_graph(human)
        return ValueGraph(
            values, [e for e in g.edges if e.source in values and e.target in values]
        ), "human PVQ-40"
    ring = [v for v in SCHWARTZ_VALUES if v in values]
    edges = [Edge(a, b, "undirected") for a, b in zip(ring, ring[1:] + ring[:1])] if len(ring) > 2 else []
    return ValueGraph(values, edges), "Schwartz's circle"


# ---------------------------------------------------------------- choosing SAE features (train only)
def _fisher_ci(r: float, n: int) -> tuple[float, float]:
    if n <= 3 or not np.isfinite(r):
        return float("nan"), float("nan")
    z, se = np.arctanh(np.clip(r, -0.999999, 0.999999)), 1 / np.sqrt(n - 3)
    return float(np.tanh(z - 1.96 * se)), float(np.tanh(z + 1.96 * se))


def choose_features(model, measurer: Measurer, sae, typical: Tensor, train: pd.DataFrame, targets: list[str],
                    train_roles: list[Role], spec: CompareSpec, progress: bool = True) -> pd.DataFrame:  # fmt: skip
    """One SAE feature per target value and rule, from train items and roles: the study's top
    activation at " your values" (among the `candidates` most active there, the one with the
    largest gradient attribution to V; the single most active one without enough roles),
    correlation across roles (answer-position activation vs the value's score) and gradient
    attribution (per typical unit). Each row: the statistic, its n and 95% CI, or the note."""
    from mechvalue.analysis.attribution import correlation, gradient_attribution
    from mechvalue.study.schema import wide_table

    hook = sae.cfg.hook_name
    sub = train[train["value"].isin(targets)].reset_index(drop=True)
    rows = []
    # study's rule: mean SAE activation on the span, one prompt per role (the span precedes the question)
    span_roles = [None, *train_roles[: spec.vector_roles]]
    ps = [measurer.prompts(sub.head(1), r, Condition())[0] for r in span_roles]
    x = vec.residual_rows(model, hook, [p.tokens for p in ps], [list(range(*p.span)) for p in ps])
    with torch.no_grad():
        span_mean = sae.encode(x.to(sae.W_enc.device)).cpu().mean(0)
    cands = span_mean.topk(spec.candidates).indices.tolist()
    # gradient attribution per role (CI across roles)
    grad = None
    groles = train_roles[: spec.grad_roles]
    gnote = _too_few(len(groles))
    if ("sae_grad" in spec.methods or "sae_span" in spec.methods) and not gnote:
        per = [gradient_attribution(measurer, sae, sub, [r], spec.where).mul(typical.numpy(), axis=0)
               for r in tqdm(groles, desc="gradient attribution", disable=not progress)]  # fmt: skip
        grad = np.stack([p[targets].to_numpy() for p in per])  # [roles, d_sae, values]
    for j, v in enumerate(targets):
        if "sae_span" in spec.methods:
            if grad is not None and not gnote:
                f = max(cands, key=lambda c: grad[:, c, j].mean())
                why = f"most active on ' your values' among top {spec.candidates}, largest attribution to {v}"
            else:
                f, why = cands[0], "most active on ' your values' (too few roles to match it to a value)"
            rows.append({"value": v, "method": "sae_span", "feature": f, "statistic": "span activation",
                         "estimate": float(span_mean[f]), "n": len(span_roles), "lo": np.nan, "hi": np.nan,
                         "note": why})  # fmt: skip
        if "sae_grad" in spec.methods:
            if gnote:
                rows.append({"value": v, "method": "sae_grad", "feature": -1, "statistic": "attribution",
                             "estimate": np.nan, "n": len(groles), "lo": np.nan, "hi": np.nan, "note": gnote})  # fmt: skip
            else:
                m = grad[:, :, j].mean(0)
                f = int(np.argmax(m))
                se = grad[:, f, j].std(ddof=1) / np.sqrt(len(groles))
                tq = stats.t.ppf(0.975, len(groles) - 1)
                rows.append({"value": v, "method": "sae_grad", "feature": f, "statistic": "attribution per typical unit",
                             "estimate": float(m[f]), "n": len(groles), "lo": float(m[f] - tq * se),
                             "hi": float(m[f] + tq * se), "note": ""})  # fmt: skip
    if "sae_corr" in spec.methods:
        croles = train_roles[: spec.corr_roles]
        cnote = _too_few(len(croles))
        corr = None
        if not cnote:
            long, wide = measure(measurer, sub, croles, progress=False)
            ps = [p for r in croles for p in measurer.prompts(sub, r, Condition())]
            last = vec.residual_rows(model, hook, [p.tokens for p in ps], [[len(p.tokens) - 1] for p in ps])
            with torch.no_grad():
                feats = sae.encode(last.to(sae.W_enc.device)).cpu()
            names = [r.name for r in croles for _ in range(len(sub))]
            corr = correlation(feats, names, list(sub["value"]) * len(croles), wide_table(long))
        for v in targets:
            if corr is None:
                rows.append({"value": v, "method": "sae_corr", "feature": -1, "statistic": "pearson r",
                             "estimate": np.nan, "n": len(croles), "lo": np.nan, "hi": np.nan, "note": cnote})  # fmt: skip
                continue
            f = int(corr[v].idxmax())
            r = float(corr.loc[f, v])
            lo, hi = _fisher_ci(r, len(croles))
            rows.append({"value": v, "method": "sae_corr", "feature": f, "statistic": "pearson r", "estimate": r,
                         "n": len(croles), "lo": lo, "hi": hi, "note": ""})  # fmt: skip
    return pd.DataFrame(rows)


# ---------------------------------------------------------------- the comparison
@dataclass
class Prepared:
    """What the train split produced: the unit, the vectors and the chosen features."""

    unit: float
    hook: str
    vectors: dict[str, dict[str, Tensor]]  # method -> value -> direction
    features: pd.DataFrame
    train_items: list
    test_items: list
    train_roles: list[str]
    test_roles: list[str]


def prepare(model, measurer: Measurer, sae, typical: Tensor | None, items: pd.DataFrame, roles: list[Role],
            spec: CompareSpec, progress: bool = True) -> tuple[Prepared, pd.DataFrame, list[Role]]:  # fmt: skip
    """Split items and roles, build the unit and vectors and choose SAE features (train only).
    Returns (prepared, test items, test roles)."""
    spec.check()
    train, test = split(items, spec.seed)
    train_roles, test_roles = split_roles(roles, spec.seed)
    targets = spec.values or sorted(items["value"].unique())
    unknown = sorted(set(targets) - set(items["value"]))
    if unknown:
        raise MechValueError(f"unknown value(s) {unknown}: not in the items' column 'value'")
    short = sorted(set(targets) - (set(train["value"]) & set(test["value"])))  # as held_out_values
    if short:
        counts = ", ".join(f"value {v!r} has {int((items['value'] == v).sum())} item(s)" for v in short)
        raise MechValueError(f"{counts}: the seeded 0.7 split leaves no train or test items, and every "
                             "method is built on train items and judged on test ones")  # fmt: skip
    hook = sae.cfg.hook_name if sae is not None else spec.hook
    if not hook or (sae is None and any(m in SAE_METHODS for m in spec.methods)):
        raise MechValueError("the SAE methods need an SAE (without one, give spec.hook and no sae_* method)")
    vroles = [None, *train_roles[: spec.vector_roles]]
    unit_prompts = measurer.prompts(train, None, Condition())  # the train items, no role
    unit = vec.residual_norm(model, hook, unit_prompts, spec.where)
    vectors: dict[str, dict[str, Tensor]] = {}
    fmt = measurer.prompt_format
    for m, fn in (("diffmean", vec.diffmean_vector), ("caa", vec.caa_vector)):
        if m in spec.methods:
            kw = {"where": spec.where} if m == "diffmean" else {}
            vectors[m] = {v: fn(model, train, v, hook, vroles, prompt_format=fmt, **kw)
                          for v in tqdm(targets, desc=m, disable=not progress)}  # fmt: skip
    feats = pd.DataFrame(columns=["value", "method", "feature"])
    if any(m in SAE_METHODS for m in spec.methods):
        feats = choose_features(model, measurer, sae, typical, train, targets, train_roles, spec, progress)
    prep = Prepared(unit, hook, vectors, feats, list(train["item"]), list(test["item"]),
                    [r.name for r in train_roles], [r.name for r in test_roles])  # fmt: skip
    return prep, test, test_roles


def condition_for(method: str, value: str, strength: float, prep: Prepared, sae, typical, values: list[str],
                  where: str) -> tuple[Condition | None, list, str | None]:  # fmt: skip
    """(value-test condition, fluency hooks, fluency hint) for one method x value x strength;
    (None, [], None) when the method has nothing for this value (e.g. too few roles)."""
    from mechvalue.interp.steering import SAEEditHook, SteeringSpec

    info = {"kind": method, "value": value, "strength": strength}
    if method == "prompting":
        hp = HardPrompt(value, value_definitions().get(value, value.lower()), 1)
        return (
            Condition(f"{method}:{value}", hard=dict.fromkeys(values, hp), info=info),
            [],
            _hint_text(value),
        )
    if method in prep.vectors:
        v = vec.steering_vector(prep.vectors[method][value], strength, prep.unit)
        mk = lambda: [(prep.hook, vec.VectorAddHook(v))]  # noqa: E731
    else:
        row = prep.features[(prep.features["method"] == method) & (prep.features["value"] == value)]
        if row.empty or int(row["feature"].iloc[0]) < 0:
            return None, [], None
        f = int(row["feature"].iloc[0])
        info["feature"] = f
        mk = lambda: [(sae.cfg.hook_name, SAEEditHook(sae, SteeringSpec([f], "add", strength, where, "typical"),  # noqa: E731
                                                       typical=typical))]  # fmt: skip
    return Condition(f"{method}:{value}@{strength:g}", mk(), where=where, info=info), mk(), None


def held_out_values(items: pd.DataFrame, seed: int = 0) -> list[str]:
    """The values with both train and test items under the seeded 0.7 split (at least 2 items)."""
    train, test = split(items, seed)
    return sorted(set(train["value"]) & set(test["value"]))


def run_compare(model, measurer: Measurer, sae, typical: Tensor | None, items: pd.DataFrame, roles: list[Role],
                spec: CompareSpec, out: str | Path, graph: ValueGraph | None = None, progress: bool = True,
                graph_name: str = "given") -> dict[str, pd.DataFrame]:  # fmt: skip
    """The whole comparison, resumable: `out/parts/<method>@<strength>.csv` (+ .json) per method x
    strength; then `compare.csv`, `best.csv`, `features.csv`, `summary.json` and the plots."""
    out = Path(out)
    parts = out / "parts"
    parts.mkdir(parents=True, exist_ok=True)
    measurer.batch_size = max(measurer.batch_size, spec.batch_size)
    if typical is None and sae is not None:
        from mechvalue.interp.features import typical_activation

        x = vec.residual_rows(model, sae.cfg.hook_name, [p.tokens for p in measurer.prompts(items, None, Condition())],
                              [list(range(1, len(p.tokens))) for p in measurer.prompts(items, None, Condition())])  # fmt: skip
        typical = typical_activation(sae, x)
    key = json.dumps(
        {k: v for k, v in asdict(spec).items() if k not in ("kl_bound", "n_boot", "n_null")}
        | {"items": items.to_dict("list"), "roles": [r.name for r in roles]},
        sort_keys=True,
        default=str,
    )
    saved = out / "prepared.pt"  # vectors and chosen features: a resumed run does not rebuild them
    old = torch.load(saved, weights_only=False) if saved.exists() else None
    if old is not None and old["key"] == key:
        prep = old["prep"]
        test = items[items["item"].isin(prep.test_items)].reset_index(drop=True)
        test_roles = [r for r in roles if r.name in set(prep.test_roles)]
    else:
        prep, test, test_roles = prepare(model, measurer, sae, typical, items, roles, spec, progress)
        save_torch({"key": key, "prep": prep}, saved)
    values = sorted(items["value"].unique())
    targets = spec.values or values
    if graph is None:
        graph, gname = value_graph(values)
    else:
        gname = graph_name
    write_csv(prep.features, out / "features.csv")
    write_json({"spec": asdict(spec), "unit_resid_norm": prep.unit, "train_items": prep.train_items,
                "test_items": prep.test_items, "train_roles": prep.train_roles, "test_roles": prep.test_roles,
                "graph": gname, "min_roles": MIN_ROLES}, out / "design.json")  # fmt: skip
    rng = np.random.default_rng(spec.seed)
    basef = parts / "unsteered.csv"
    if not basef.exists():
        _, wide = measure(measurer, test, test_roles, progress=False)
        flu = fluency(model, [], None, spec, rng)
        write_json(flu, parts / "unsteered.json")
        write_csv(wide, basef)
    base = by_role(pd.read_csv(basef))
    jobs = [(m, s) for m in spec.methods for s in spec.strengths(m)]
    for m, s in tqdm(jobs, desc="steer-compare", disable=not progress):
        part = parts / f"{m}@{s:g}.csv"
        if part.exists():
            continue
        wides, flus = [], {}
        for v in targets:
            cond, hooks, hint = condition_for(m, v, s, prep, sae, typical, values, spec.where)
            if cond is None:
                continue
            _, w = measure(measurer, test, test_roles, [cond], progress=False)
            wides.append(w.assign(target=v))
            flus[v] = fluency(model, hooks, hint, spec, rng) | {"info": cond.info}
        write_json(flus, parts / f"{m}@{s:g}.json")
        write_csv(pd.concat(wides, ignore_index=True) if wides else pd.DataFrame(columns=["target"]), part)
    return tables(out, spec, base, graph, targets)


def tables(out: Path, spec: CompareSpec, base: pd.DataFrame, graph: ValueGraph, targets: list[str]) -> dict:
    """compare.csv (every method x value x strength with CIs), best.csv, summary.json, plots."""
    parts = out / "parts"
    ref = json.loads((parts / "unsteered.json").read_text())
    rows = []
    for m in spec.methods:
        for s in spec.strengths(m):
            p = parts / f"{m}@{s:g}.csv"
            if not p.exists():
                continue
            w = pd.read_csv(p)
            flus = json.loads((parts / f"{m}@{s:g}.json").read_text())
            for v in targets:
                if v not in flus:
                    rows.append(
                        {"method": m, "value": v, "strength": s, "note": "no feature chosen (too few roles)"}
                    )
                    continue
                steered = w[w["target"] == v].drop(columns=["target"])
                steered = steered.set_index(steered["player_name"].fillna(""))[list(base.columns)]
                met = effect_metrics(base, steered, v, graph, spec.n_boot, spec.n_null, spec.seed)
                f = flus[v]
                rows.append({"method": m, "value": v, "strength": s, "feature": f["info"].get("feature", ""), **met,
                             "kl": f["kl"], "kl_lo": f["kl_ci"][0], "kl_hi": f["kl_ci"][1], "kl_n": f["kl_n"],
                             "ppl": f["ppl"], "ppl_lo": f["ppl_ci"][0], "ppl_hi": f["ppl_ci"][1], "ppl_n": f["ppl_n"],
                             "ppl_ratio": f["ppl"] / ref["ppl"], "speed_ratio": f["speed"],
                             "admissible": bool(f["kl"] <= spec.kl_bound)})  # fmt: skip
    cmp = pd.DataFrame(rows)
    write_csv(cmp, out / "compare.csv")
    best = best_table(cmp)
    write_csv(best, out / "best.csv")
    summ = {"verdict": verdict(best), "kl_bound": spec.kl_bound, "min_roles": MIN_ROLES,
            "unsteered_ppl": ref["ppl"], "winners": winners(best)}  # fmt: skip
    write_json(summ, out / "summary.json")
    if not cmp.empty and "efficacy" in cmp:
        plot_tradeoff(cmp, spec.kl_bound, out / "tradeoff.png")
        plot_selectivity(best, out / "selectivity.png")
    return {"compare": cmp, "best": best, "summary": summ}


def best_table(cmp: pd.DataFrame) -> pd.DataFrame:
    """Per value and method: the admissible strength (KL under the bound) with the largest efficacy."""
    if cmp.empty or "efficacy" not in cmp:
        return pd.DataFrame(columns=["value", "method", "strength", "efficacy"])
    ok = cmp[cmp["admissible"].fillna(False).astype(bool) & cmp["efficacy"].notna()]
    best = ok.sort_values("efficacy", ascending=False).drop_duplicates(["value", "method"])
    miss = (
        cmp[["value", "method"]]
        .drop_duplicates()
        .merge(best[["value", "method"]], how="left", indicator=True)
    )
    miss = miss[miss["_merge"] == "left_only"].drop(columns="_merge").assign(note="no admissible strength")
    return pd.concat([best, miss], ignore_index=True).sort_values(["value", "method"]).reset_index(drop=True)


def winners(best: pd.DataFrame) -> dict:
    """Per value the method with the largest admissible efficacy, and overall the method with the
    largest mean admissible efficacy over values (NaN-free rows only)."""
    b = best.dropna(subset=["efficacy"]) if "efficacy" in best else best.iloc[0:0]
    if b.empty:
        return {"per_value": {}, "overall": None, "mean_efficacy": {}}
    per = b.loc[b.groupby("value")["efficacy"].idxmax()].set_index("value")["method"].to_dict()
    mean = b.groupby("method")["efficacy"].mean().sort_values(ascending=False)
    return {"per_value": per, "overall": mean.index[0], "mean_efficacy": mean.round(3).to_dict()}


def verdict(best: pd.DataFrame) -> str:
    """One sentence: which method won, per value and overall."""
    w = winners(best)
    if w["overall"] is None:
        return "No method had an admissible strength with enough test roles to be ranked."
    per = "; ".join(f"{v}: {m}" for v, m in w["per_value"].items())
    eff = w["mean_efficacy"]
    return (
        f"Overall {w['overall']} moved the targeted value most within the fluency bound "
        f"(mean {eff[w['overall']]:+.2f} between-role SD), winning per value: {per}."
    )


def plot_tradeoff(cmp: pd.DataFrame, bound: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from mechvalue.analysis.plots import _save

    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    g = (
        cmp.dropna(subset=["efficacy"])
        .groupby(["method", "strength"])[["kl", "efficacy"]]
        .mean()
        .reset_index()
    )
    for m, d in g.groupby("method"):
        d = d.sort_values("strength")
        ax.plot(d["kl"], d["efficacy"], "o-", label=m)
    ax.axvline(bound, color="grey", ls="--", lw=1, label=f"fluency bound (KL {bound:g})")
    ax.set_xscale("symlog", linthresh=1e-3)
    ax.set_xlabel("fluency cost: mean KL(unsteered || steered), nats/token")
    ax.set_ylabel("efficacy (between-role SD), mean over values")
    ax.legend(fontsize=8)
    ax.set_title("Steering trade-off per method (points: strengths)")
    _save(fig, path)


def plot_selectivity(best: pd.DataFrame, path: Path) -> None:
    from mechvalue.analysis.plots import heatmap

    if "selectivity" not in best or best["selectivity"].notna().sum() == 0:
        return
    t = best.pivot_table(index="method", columns="value", values="selectivity", aggfunc="first")
    lim = float(np.nanmax(np.abs(t.to_numpy()))) or 1.0
    heatmap(
        t, path, "Selectivity at the best admissible strength (target / mean off-target change)", -lim, lim
    )


def report_section(out: str | Path) -> dict:
    """What the report shows: the verdict sentence, the best-strength table and the plot paths."""
    out = Path(out)
    if not (out / "summary.json").exists():
        return {"verdict": "steer-compare has not run", "best": [], "plots": []}
    summ = json.loads((out / "summary.json").read_text())
    if not (out / "best.csv").exists():  # the stage said why it did not run
        return {"verdict": summ["verdict"], "best": [], "plots": []}
    best = pd.read_csv(out / "best.csv")
    cols = [c for c in ("value", "method", "strength", "feature", "efficacy", "efficacy_lo", "efficacy_hi", "target_change",
                        "share_up", "selectivity", "selectivity_lo", "selectivity_hi", "off_target", "kl",
                        "ppl_ratio", "speed_ratio", "n_roles", "note") if c in best]  # fmt: skip
    return {"verdict": summ["verdict"], "kl_bound": summ["kl_bound"], "min_roles": summ["min_roles"],
            "best": best[cols].to_dict("records"),
            "plots": [str(p) for p in (out / "tradeoff.png", out / "selectivity.png") if p.exists()]}  # fmt: skip
