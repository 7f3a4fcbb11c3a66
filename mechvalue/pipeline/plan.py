"""What a `mechvalue run` will do and how long it will take, before it does it.

Per stage the model work is counted from the settings without running the model: the prompts
each stage builds (the stages' own prompt builders and batching: `Measurer.prompts`, `batches`,
`shared_prefix`, through `CountingMeasurer`, which runs the protocol but answers every forward
with zeros and counts its positions), their prompt tokens (padded batch x positions, the count
`mechvalue.lm.tokens` keeps while the stage runs, so planned and run counts can be compared
one to one) and their generated tokens (decode steps x rows; an upper bound where generation
may stop early at an end token). A short calibration on the loaded model (a forward pass of a few
of the run's measure prompts, and decode steps at two batch sizes) gives seconds per prompt token
and per decode step; the machine's matmul limit (`mechvalue.lm.limit`) is measured with it. The
measuring stages' own work besides the forwards (rendering, tokenizing, scoring) is timed as they
are counted, and added. A stage whose model work runs on one-thread worker processes (the
`processes` executor: measure, grid, validity) is predicted at the calibration's one-thread rate
over the workers' share of the cores (the cores over the workers plus the other busy processes,
by the load average before the run). Stages
whose work is not counted (SAE training, the steering comparison) or that run no model (graph,
tables, report) get a rule-of-thumb time, marked `~` in the table.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from mechvalue.lm.batching import chunks
from mechvalue.lm.literals import DEFAULT_MODEL
from mechvalue.lm.tokens import TokenCount, uncounted
from mechvalue.measurement.scoring import Condition, Measurer, common_prefix
from mechvalue.threads import one_torch_thread


@dataclass
class CountingMeasurer(Measurer):
    """A `Measurer` whose forwards are counted, not run: `answer_logits` adds the positions the
    real one would run (the shared prefix once, then the padded suffixes; or the padded prompts)
    to `count` and returns zero logits, so any protocol's own batching and prompts are counted."""

    count: Work = field(default_factory=lambda: Work(), kw_only=True)  # shared by `replace` copies

    @classmethod
    def of(cls, m: Measurer) -> CountingMeasurer:
        from mechvalue.measurement.tasks import measurer_settings

        return cls(m.model, **measurer_settings(m))

    def answer_logits(self, batch, cond):
        seqs = [p.tokens for p in batch]
        n = self.shared_prefix(batch, cond)
        prefix = tuple(seqs[0][:n])
        reused = self.keeps(prefix, cond)  # a kept prefix runs once (`Measurer._prefix`)
        self.kept_prefix = (prefix, cond) if n else self.kept_prefix
        self.count.prompts += len(seqs)
        self.count.prompt_tokens += (0 if reused else n) + len(seqs) * max(len(s) - n for s in seqs)
        return torch.zeros(len(seqs), len(self.model.tokenizer))


# the stages that run the model (the others are not worth a model load and a calibration)
MODEL_STAGES = {
    "measure",
    "sae",
    "activations",
    "features",
    "grid",
    "generations",
    "validity",
    "steer_compare",
}


@dataclass
class Work:
    """One stage's planned model work and the time predicted for it."""

    prompts: int = 0
    prompt_tokens: int = 0
    generated_tokens: int = 0  # decode steps x rows (an upper bound: generation may stop early)
    decode_steps: int = 0
    cost: float = 1.0  # forward passes' worth of matmuls per prompt token (2: forward + input gradient)
    fixed_s: float = 0.0  # time besides the counted forwards, as measured now
    quiet_s: float | None = 0.0  # and a rule of thumb of a quiet machine (None: not predicted)
    counted: bool = True  # False: the stage's model work is not counted; its time is a rule of thumb
    measured: bool = False  # its prompts are scored as `Measurer.answer_logits` does (shared prefix)
    pooled: float = 0.0  # the share of its model work the executor's one-thread worker processes run
    note: str = ""
    predicted_s: float | None = None


@dataclass
class Calibration:
    """Seconds per prompt token of a plain padded forward (a few of the run's measure prompts) and
    of the scoring path (`measured_token_s`: the run's first measure batch, shared prefix and
    padded suffixes), and per decode step: `step_s` + `row_s` x rows (timed at two batch sizes);
    `busy`: the load average per CPU when it ran (at least 1), what a quiet machine's rule of thumb
    is scaled by; `one_thread` and `one_thread_step`: the scored batch's and a 16-row decode
    step's time at one torch thread over their time at this process's threads, and `workers`: the
    one-thread workers' share of the cores (0: none), for the stages they run (`Work.pooled`)."""

    prompt_token_s: float
    measured_token_s: float
    step_s: float
    row_s: float
    busy: float
    seconds: float  # the calibration's own time
    one_thread: float = 1.0
    one_thread_step: float = 1.0
    workers: float = 0.0

    def predict(self, w: Work) -> float | None:
        if w.quiet_s is None:
            return None
        per_token = self.measured_token_s if w.measured else self.prompt_token_s
        forward = w.prompt_tokens * w.cost * per_token
        decode = w.decode_steps * self.step_s + w.generated_tokens * self.row_s
        fixed = w.fixed_s
        if w.pooled and self.workers:
            here = 1 - w.pooled
            forward *= here + w.pooled * self.one_thread / self.workers
            decode *= here + w.pooled * self.one_thread_step / self.workers
            fixed *= here + w.pooled / self.workers
        return forward + decode + fixed + w.quiet_s * self.busy


def _padded(seqs: list[list[int]], batch_size: int) -> tuple[int, int]:
    """(padded positions, rows) of `seqs` run in left-padded batches of `batch_size`."""
    padded = sum((sl.stop - sl.start) * max(map(len, seqs[sl])) for sl in chunks(len(seqs), batch_size))
    return padded, len(seqs)


def _measured(m: Measurer, items, roles, conds) -> Work:
    """Work of `measure(m, items, roles, conds)`: the protocol run on a `CountingMeasurer`."""
    from mechvalue.measurement.scoring import measure

    c = CountingMeasurer.of(m)
    t = time.perf_counter()
    measure(c, items, roles, conds, progress=False)
    # the time of the run on zeros is the stage's own work besides the forwards (prompts, scores)
    return Work(c.count.prompts, c.count.prompt_tokens, fixed_s=time.perf_counter() - t, measured=True)


def _generated(
    prompts: list[list[int]], batch: int, new_tokens: int, calls: int = 1, shared: bool = False
) -> Work:
    """Work of greedy generation of `new_tokens` after `prompts` in batches, `calls` times: one
    prompt pass per batch (`shared`: its common prefix run once, as the generate scorer does) and
    at most `new_tokens - 1` decode steps (the last token needs none)."""
    prompt, rows = _padded(prompts, batch)
    if shared:
        for sl in chunks(len(prompts), batch):
            seqs = prompts[sl]
            n = common_prefix(seqs) if len(seqs) > 1 else 0
            prompt -= n * (len(seqs) - 1)
    steps = sum(max(new_tokens - 1, 0) for _ in chunks(len(prompts), batch))
    return Work(rows * calls, prompt * calls, rows * max(new_tokens - 1, 0) * calls, steps * calls)


def _plus(a: Work, b: Work) -> Work:
    return Work(
        a.prompts + b.prompts,
        a.prompt_tokens + b.prompt_tokens,
        a.generated_tokens + b.generated_tokens,
        a.decode_steps + b.decode_steps,
        fixed_s=a.fixed_s + b.fixed_s,
        quiet_s=a.quiet_s + b.quiet_s,
        measured=a.measured,
    )


def _measure(r) -> Work:
    return _measured(r.measurer, r.items, r.roles, [Condition()])


def _sae(r) -> Work:
    """A given or cached SAE is loaded; training one is not predicted (as `stages.sae` decides)."""
    from mechvalue.interp.sae_recipe import recipe_folder

    cfg = r.cfg
    full = (recipe_folder(cfg.model, cfg.layer) / "metrics.json").exists()
    folder = recipe_folder(cfg.model, cfg.layer, "-quick" if cfg.quick and not full else "")
    if cfg.sae != "train" or ((folder / "metrics.json").exists() and (folder / "sae").exists()):
        return Work(quiet_s=0.5, note="SAE given or cached: loaded")
    return Work(quiet_s=None, counted=False, note="trains the SAE: not predicted")


def _activations(r) -> Work:
    from mechvalue.interp.features import cache_prompts
    from mechvalue.study.prompts import render

    ps = [
        render(q, role, r.info.prompt_format, r.model.tokenizer, answer_prefix="Answer:")
        for role in r.act_roles
        for q in r.act_items["question"]
    ]
    tok, rows = _padded([p.tokens for p in cache_prompts(ps)], 16)
    # the passes stop after the SAE's layer; one more of one token finds the hook's width
    return Work(rows, tok + 1, cost=(r.cfg.layer + 1) / r.model.cfg.n_layers)


def _features(r) -> Work:
    """Gradient attribution: a forward and a backward pass of every cached prompt, 4 roles; the
    weights need no gradient, so the backward pass costs about half a forward (x1.5 in all; the
    stage ran at 1.45x a plain forward's time per token in two full runs on the 2-core CPU)."""
    cond, tok, rows = Condition(where="span"), 0, 0
    for role in r.act_roles[:4]:
        ps = [p.tokens for p in r.measurer.prompts(r.act_items, role, cond)]
        t, n = _padded(ps, r.measurer.batch_size)
        tok, rows = tok + t, rows + n
    return Work(rows, tok, cost=1.5, quiet_s=1.0)


def _grid(r) -> Work:
    """Unsteered, one condition per feature (the grid's strength) and, without --quick, the hard
    prompts; a feature's hook changes no token count, so none is built. Counted one condition at
    a time: an upper bound where the grid measures a role's conditions together
    (`measurement.condition_batch` runs their shared prefix once)."""
    from mechvalue.measurement.grid import HARD_LABELS, hard_prompts

    values = sorted(r.items["value"].unique())
    conds = [Condition()] + [Condition(f"f{i}", where="span") for i in range(r.cfg.features)]
    if not r.cfg.quick:
        conds += [Condition(name, hard=hard_prompts(values, d)) for d, name in HARD_LABELS.items()]
    return _measured(r.measurer, r.items, r.grid_roles, conds)


def _generations(r) -> Work:
    from mechvalue.study.prompts import render

    qs = list(r.items.groupby("value", sort=False).head(1)["question"][:2])
    ps = [render(q, None, r.info.prompt_format, r.model.tokenizer).tokens for q in qs]
    w = _generated(ps, len(ps), 16 if r.cfg.quick else 40, calls=1 + r.cfg.features)
    w.note = "generated: at most (early stop)"
    return w


def _steer_compare(r) -> Work:
    """Not counted: a measured run's count stands in, under --quick a quick run's (12,234 prompt
    tokens), on the default model's full run in the powered design that run's (138,481 prompt
    tokens through the scoring path, 2026-12-06); other runs are not predicted."""
    if r.cfg.quick:
        # its batches are large (CompareSpec.batch_size): the plain forward's rate, not the scoring path's
        return Work(prompt_tokens=12234, quiet_s=10.0, counted=False, note="a quick run's tokens")
    if r.cfg.steer_design == "powered" and r.cfg.model == DEFAULT_MODEL:
        return Work(prompt_tokens=138481, counted=False, measured=True, note="a full run's tokens")
    return Work(quiet_s=None, counted=False, note="not predicted")


def _no_model(quick_s: float, full_s: float):
    return lambda r: Work(quiet_s=quick_s if r.cfg.quick else full_s, counted=False, note="no model")


def stage_work(r, stages: list[str]) -> dict[str, Work]:
    """Each stage's planned work from the run's settings and resources (`Resources`: the items,
    roles, measurer and loaded model; nothing an earlier stage writes is read)."""
    return {s: PLANNERS[s](r) for s in stages}


def _validity(r) -> Work:
    """The known-group personas on the run's protocol; without --quick the other forms and scorers
    on the grid roles (the generating scorer counted at its most tokens)."""
    from dataclasses import replace

    from mechvalue.analysis.validity import known_groups_path
    from mechvalue.study.roles import load_players

    cfg, m, items = r.cfg, r.measurer, r.items
    kg = load_players(known_groups_path())[: 4 if cfg.quick else None]
    w = _measured(m, items, kg, [Condition()])
    w.quiet_s = 5.0  # the reliability battery's resamples
    if cfg.quick:
        return w
    for f in ("swapped", "plain", "reflect"):
        w = _plus(w, _measured(replace(m, form=f), items, r.grid_roles, [Condition()]))
    w = _plus(w, _measured(replace(m, scoring="likert", protocol=None), items, r.grid_roles, [Condition()]))
    g = replace(m, scoring="generate", protocol=None)
    for role in r.grid_roles:
        ps = [p.tokens for p in g.scorer.prompts(g, items, role, Condition())]
        w = _plus(w, _generated(ps, g.decode_batch_size, g.max_new_tokens, shared=g.prefix_cache))
    w.note = "generated: at most (early stop)"
    return w


# the share of each stage's model work an executor's workers run: all of the measuring stages';
# the steering comparison's test roles (56% of its forward tokens in the default run's design:
# steering.design.cost), its train side and fluency runs here
POOLED = {"measure": 1.0, "grid": 1.0, "validity": 1.0, "steer_compare": 0.56}

# the planned work of each stage of `mechvalue.pipeline.stages.STAGES`
PLANNERS = {
    "measure": _measure,
    "sae": _sae,
    "activations": _activations,
    "features": _features,
    "grid": _grid,
    "generations": _generations,
    "graph": lambda r: Work(quiet_s=0.5 + 0.05 * r.cfg.bootstrap, counted=False, note="no model"),
    "tables": _no_model(3.0, 10.0),
    "validity": _validity,
    "steer_compare": _steer_compare,
    "report": _no_model(0.5, 2.0),
}


def _mean(fn, repeats: int = 2) -> float:
    """The mean of a few timings of `fn()`: the machine as busy as it is now (the stages will
    share it as it is)."""
    t = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - t) / repeats


def _step_seconds(model, seqs: list[list[int]], steps: int = 4) -> float:
    """Seconds of one decode step for `len(seqs)` rows: a prompt pass fills the KV cache, then
    one-token forwards on it are timed (the median of `steps`)."""
    from mechvalue.lm.batching import left_pad
    from mechvalue.lm.bridge import as_bridge, model_device
    from mechvalue.lm.generation import decode_cache, logits_at

    bridge = as_bridge(model)
    tokens, attn = left_pad(seqs, bridge.tokenizer.pad_token_id or 0, model_device(bridge))
    cache = decode_cache(bridge, steps)  # the cache `greedy_generate` decodes with
    nxt = logits_at(bridge, tokens, attn, cache).argmax(-1)
    took = []
    for _ in range(steps):
        attn = torch.cat([attn, torch.ones_like(attn[:, :1])], 1)
        t = time.perf_counter()
        nxt = logits_at(bridge, nxt[:, None], attn, cache).argmax(-1)
        took.append(time.perf_counter() - t)
    return sorted(took)[len(took) // 2]


def calibrate(r) -> Calibration:
    """Time the run's first measure batch as it is first scored, its persona's prefix included
    (seconds per scored prompt token; with one-thread workers at one thread too), a padded forward
    of 4 of its prompts (seconds per prompt token), and decode steps at 2 and 16 rows on 8-token
    prompts (seconds per step and per row); a few seconds, none of it counted as a stage's tokens."""
    from mechvalue.lm.generation import last_logits

    t00 = time.perf_counter()
    m, cond = r.measurer, Condition()
    prompts = m.prompts(r.items, r.roles[-1], cond)
    batch = [prompts[i] for i in m.batches(r.items, cond)[0]]
    counting = CountingMeasurer.of(m)
    counting.answer_logits(batch, cond)
    seqs = [p.tokens for p in prompts]
    while len(seqs) < 16:  # a tiny inventory: its prompts again
        seqs = seqs + seqs

    def scored():  # as the batch is first scored: its prefix run too, not one kept from before
        m.kept_prefix = None
        m.answer_logits(batch, cond)

    with uncounted(), torch.no_grad():
        scored()  # warm-up
        measured_s = _mean(scored) / counting.count.prompt_tokens
        workers = _worker_share(r.executor, r.info)
        one_thread = 1.0
        if workers:
            with one_torch_thread():
                one_thread = _mean(scored) / counting.count.prompt_tokens / measured_s
        m.kept_prefix = None
        prompt_s = _mean(lambda: last_logits(r.model, seqs[:4])) / (4 * max(map(len, seqs[:4])))
        short = [s[:8] for s in seqs[:16]]
        per_step = {rows: _step_seconds(r.model, short[:rows]) for rows in (2, 16)}
        one_thread_step = 1.0
        if workers:
            with one_torch_thread():
                one_thread_step = _step_seconds(r.model, short[:16]) / per_step[16]
    row_s = max(per_step[16] - per_step[2], 0.0) / 14
    step_s = max(per_step[2] - 2 * row_s, 0.0)
    took = time.perf_counter() - t00
    return Calibration(
        prompt_s,
        measured_s,
        step_s,
        row_s,
        _busy(),
        took,
        round(one_thread, 3),
        round(one_thread_step, 3),
        workers,
    )


def _worker_share(executor, model) -> float:
    """Cores' worth the executor's one-thread workers will get (0: no `processes` executor): all
    their own up to the cores, less a fair share for the other busy processes (`_others`)."""
    from mechvalue.distributed.executor import cpu_cores

    if getattr(executor, "kind", "local") != "processes":
        return 0.0
    n, cores, others = executor.workers(model), cpu_cores(), _others()
    return round(min(n, cores, cores * n / (n + others)), 2)


def _others(samples: int = 10) -> int:
    """Other processes running now: the median of a few reads of the kernel's count of runnable
    threads (/proc/loadavg), less this one; elsewhere the 1-minute load average, rounded (which
    lags: a job that just ended still counts)."""
    try:
        counts = []
        for _ in range(samples):
            with open("/proc/loadavg") as f:
                counts.append(int(f.read().split()[3].split("/")[0]))
            time.sleep(0.02)
        return max(0, sorted(counts)[len(counts) // 2] - 1)
    except (OSError, ValueError, IndexError):
        return round(os.getloadavg()[0])


def _busy() -> float:
    """The load average per CPU, at least 1: how much slower than quiet this machine runs now."""
    return round(max(1.0, os.getloadavg()[0] / (os.cpu_count() or 1)), 2)


@dataclass
class Plan:
    """The run's planned work per pending stage, the calibration, the machine's limit and the
    predicted seconds; `eta` and `actual` follow the stages as they run."""

    work: dict[str, Work]
    calibration: Calibration
    limit: dict | None  # None: no stage left that runs the model
    spent: dict[str, float] = field(default_factory=dict)  # seconds of the stages run so far

    @classmethod
    def make(cls, r, stages: list[str]) -> Plan:
        from mechvalue.lm.limit import model_limit

        work = stage_work(r, stages)
        if not set(stages) & MODEL_STAGES:  # graph, tables, report left: no model loaded for them
            cal, limit = Calibration(0.0, 0.0, 0.0, 0.0, _busy(), 0.0), None
        pooled = getattr(r.executor, "kind", "local") == "processes"
        for s in set(POOLED) & set(work) if pooled else ():
            work[s].pooled = POOLED[s]
        else:
            cal, limit = calibrate(r), model_limit(r.model)
        for w in work.values():
            p = cal.predict(w)
            w.predicted_s = round(p, 1) if p is not None else None
        return cls(work, cal, limit)

    def drift(self) -> float:
        """Actual over predicted seconds of the stages this run has finished that run the model
        (1 before the first): how much faster or slower the machine is than at the calibration."""
        done = [(a, self.work.get(s, Work()).predicted_s) for s, a in self.spent.items() if s in MODEL_STAGES]
        done = [(a, p) for a, p in done if p]
        return sum(a for a, _ in done) / sum(p for _, p in done) if done else 1.0

    def eta(self, stage: str) -> str:
        """'predicted 12 s, ends ~05:31:02' for a stage starting now: the plan's prediction,
        scaled by the run's drift so far."""
        w = self.work.get(stage)
        if w is None or w.predicted_s is None:
            return ""
        d = self.drift()
        end = time.strftime("%H:%M:%S", time.localtime(time.time() + w.predicted_s * d))
        now = f" x {d:.2f} so far = {w.predicted_s * d:.0f} s" if self.spent else ""
        return f"(predicted {'~' if not w.counted else ''}{w.predicted_s:.0f} s{now}, ends ~{end})"

    def actual(self, stage: str, count: TokenCount, seconds: float) -> dict:
        """The stage's entry in timings.json `stages`: its counted tokens and rate against the
        limit, with what was planned."""
        from mechvalue.lm.limit import throughput

        w = self.work.get(stage, Work())
        eta = w.predicted_s * self.drift() if w.predicted_s is not None else None
        self.spent[stage] = seconds
        return throughput(count.prompt, count.generated, seconds, self.limit) | {
            "load_avg_1min": round(os.getloadavg()[0], 2),  # the machine's load as the stage ended
            "prompt_tokens_real": count.prompt_real,
            "forwards": count.forwards,
            "predicted_s": w.predicted_s,
            "eta_s": round(eta, 1) if eta is not None else None,  # the prediction x the drift as it began
            "planned_prompt_tokens": w.prompt_tokens if w.counted else None,
            "planned_generated_tokens": w.generated_tokens if w.counted else None,
        }

    def merged(self, earlier: dict | None) -> dict:
        """`as_dict`, over what an earlier run of the same folder planned: its stages kept beside
        these, and its calibration when this plan has none (no stage left that runs the model)."""
        out = self.as_dict()
        if earlier:
            out["stages"] = earlier.get("stages", {}) | out["stages"]
            if self.limit is None and earlier.get("calibration"):
                out["calibration"] = earlier["calibration"]
            out["predicted_total_s"] = round(sum(w["predicted_s"] or 0 for w in out["stages"].values()), 1)
        return out

    def as_dict(self) -> dict:
        return {
            "stages": {s: asdict(w) for s, w in self.work.items()},
            "calibration": asdict(self.calibration),
            "predicted_total_s": round(sum(w.predicted_s or 0 for w in self.work.values()), 1),
        }

    def table(self) -> str:
        """The plan as printed before the first stage."""
        head = f"{'stage':<14}{'prompts':>9}{'prompt tok':>12}{'generated':>11}{'predicted':>11}  note"
        lines = ["[mechvalue run] plan", head]
        for s, w in self.work.items():
            pred = "?" if w.predicted_s is None else f"{'~' if not w.counted else ''}{w.predicted_s:.0f} s"
            lines.append(
                f"{s:<14}{w.prompts:>9}{w.prompt_tokens:>12}{w.generated_tokens:>11}{pred:>11}  {w.note}"
            )
        total = sum(w.predicted_s or 0 for w in self.work.values())
        tot = [
            sum(getattr(w, k) for w in self.work.values())
            for k in ("prompts", "prompt_tokens", "generated_tokens")
        ]
        unknown = [s for s, w in self.work.items() if w.predicted_s is None]
        lines.append(
            f"{'total':<14}{tot[0]:>9}{tot[1]:>12}{tot[2]:>11}{total:>9.0f} s"
            + (f"  + {', '.join(unknown)} (not predicted)" if unknown else "")
        )
        c, lim = self.calibration, self.limit
        if lim is None:
            return "\n".join(lines)
        lines.append(
            f"calibration: {c.prompt_token_s * 1e3:.2f} ms per prompt token ({c.measured_token_s * 1e3:.2f} "
            "scored), decode step "
            f"{c.step_s * 1e3:.1f} ms + {c.row_s * 1e3:.2f} ms per row; limit {lim['gflops']:.1f} GFLOP/s "
            f"({lim['shape']}, {lim['threads']} threads) = {lim['limit_tokens_per_s']:.0f} tokens/s; "
            f"load {c.busy:.1f} per CPU"
            + (
                f"; one-thread workers: {c.workers:g} cores' worth, {c.one_thread:.2f}x a token's time, "
                f"{c.one_thread_step:.2f}x a decode step's"
                if c.workers
                else ""
            )
        )
        return "\n".join(lines)


@dataclass
class Unwritten:
    """A run folder's reading side for `--plan`: its settings and which stages are done, with
    nothing written."""

    out: Path
    cfg: object

    def done(self, stage: str) -> bool:
        return (self.out / stage / "done.json").exists()
