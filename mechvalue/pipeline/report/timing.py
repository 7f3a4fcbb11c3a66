"""Section: where the run's time went. Per stage the wall and CPU seconds and, where timings.json
has them, the tokens the stage ran, its throughput and how far that is from the machine's limit
(timings.json's top-level "limit": the peak GFLOP/s and the shape it was measured on); then the
executor's per-worker load and busy time inside stages."""

from __future__ import annotations

import pandas as pd

from mechvalue.pipeline.report.blocks import fmt, heading, note, table
from mechvalue.pipeline.report.common import Page, Section

STAGE, ORDER = None, 100
TOKEN_COLUMNS = {  # timings.json's per-stage field -> column
    "prompt_tokens": "prompt tokens",
    "generated_tokens": "generated tokens",
    "tokens_per_s": "tokens/s",
    "limit_tokens_per_s": "limit, tokens/s",
    "ratio_to_limit": "share of the limit",
}


def executor_text(e: dict) -> str:
    kind = e.get("kind", "local")
    if kind == "local":
        return "this process"
    parts = [f"{k.replace('_', ' ')} {fmt(v)}" for k, v in e.items() if k not in ("kind", "resources") and v]
    return f"{kind}: " + ", ".join(parts)


def threads_text(t: dict | None) -> str:
    """The CPU threads a run had (`mechvalue.threads.thread_settings`), '' where not recorded."""
    if not t:
        return ""
    omp = [f"{k}={v}" for k, v in t.items() if k != "torch_threads" and v is not None]
    return f"; {t['torch_threads']} torch threads" + (f", {', '.join(omp)}" if omp else "")


def stage_table(times: dict[str, float], spent: dict | None) -> pd.DataFrame:
    """One row per finished stage and a total row: wall and CPU seconds, the share of the wall
    time, and the token columns where any stage has them."""
    spent = spent or {}
    total = sum(times.values())
    cpu = spent.get("run_stages_cpu", {})
    per = spent.get("stages", {})
    df = pd.DataFrame(
        {
            "stage": list(times),
            "wall, s": list(times.values()),
            "CPU, s (this process)": [cpu.get(k) for k in times],
            "share of the wall time, %": [100 * t / total if total else 0.0 for t in times.values()],
        }
    )
    tokens = [k for k in TOKEN_COLUMNS if any(k in (per.get(s) or {}) for s in times)]
    for k in tokens:
        df[TOKEN_COLUMNS[k]] = [(per.get(s) or {}).get(k) for s in times]
    total_row = {
        "stage": "total (before the report)",
        "wall, s": total,
        "CPU, s (this process)": sum(cpu.get(k) or 0.0 for k in times) or None,
        "share of the wall time, %": 100.0,
    }
    for k in ("prompt_tokens", "generated_tokens"):
        if k in tokens:
            total_row[TOKEN_COLUMNS[k]] = sum((per.get(s) or {}).get(k) or 0 for s in times)
    df = pd.concat([df, pd.DataFrame([total_row])], ignore_index=True)
    if not cpu:
        df = df.drop(columns="CPU, s (this process)")
    return df


def build(p: Page) -> Section | None:
    from mechvalue.distributed.timings import time_summary

    times, spent = p.ws.timings(list(p.stages)), time_summary(p.ws.out)
    blocks = []
    if times:
        df = stage_table(times, spent)
        digits = {c: 3 if c == TOKEN_COLUMNS["ratio_to_limit"] else 1 for c in df.columns}
        blocks += [heading("Time per stage"), table(df, digits)]
        lim = (spent or {}).get("limit")
        if lim:
            blocks.append(
                note(
                    f"Limit: {fmt(lim.get('gflops'), 1)} GFLOP/s measured on {fmt(lim.get('shape'))}; "
                    "'limit, tokens/s' is the stage's tokens at that rate, 'share of the limit' its "
                    "throughput over that."
                )
            )
    if spent and spent.get("stages"):
        rows = [
            {
                "stage": st,
                "worker": w,
                "tasks": info.get("tasks"),
                "busy, s": info.get("busy_s"),
                "loading, s": info.get("load_s"),
                "utilisation": info.get("utilisation"),
            }
            for st, s in spent["stages"].items()
            for w, info in (s.get("workers") or {}).items()
        ]
        if rows:
            blocks += [
                heading(
                    f"Where time went inside stages (executor: {executor_text(spent.get('executor', {}))}"
                    f"{threads_text(spent.get('threads'))})"
                ),
                table(pd.DataFrame(rows), 2),
            ]
    return {"title": "Timings", "blocks": blocks} if blocks else None
