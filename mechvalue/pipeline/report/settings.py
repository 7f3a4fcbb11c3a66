"""Section: every setting of the run, as what it resolved to, and the library versions."""

from __future__ import annotations

from mechvalue.pipeline.report.blocks import fmt, heading, kv
from mechvalue.pipeline.report.common import Page, Section
from mechvalue.pipeline.workspace import Workspace

STAGE, ORDER = None, 90


def inputs(ws: Workspace) -> list[tuple[str, object]]:
    """Every setting of the run, as what it resolved to (never None for an input the run had)."""
    s = ws.cfg
    got = ws.read_json("measure", "inputs.json") if (ws.out / "measure" / "inputs.json").exists() else {}
    sae = ws.read_json("sae", "sae.json") if ws.done("sae") else {}
    trained = s.sae == "train"
    sae_train = ", ".join(f"{k} {v}" for k, v in s.sae_train.items()) or "the recipe's defaults"
    return [
        ("model", s.model + (f" ({got['model']})" if got.get("model") and got["model"] != s.model else "")),
        ("device, dtype", f"{s.device}, {s.dtype}"),
        (
            "prompt format",
            s.prompt_format
            or (
                f"{got['prompt_format']} (chosen for the model)"
                if got.get("prompt_format")
                else "chosen for the model"
            ),
        ),
        ("scoring", got.get("scoring", "logprob")),
        ("inventory", s.inventory or got.get("inventory", "the shipped inventory (MVI10)")),
        (
            "questionnaire",
            s.questionnaire
            or (
                ", ".join(got["questionnaires"]) + " (every one in the inventory)"
                if got.get("questionnaires")
                else "every one in the inventory"
            ),
        ),
        (
            "items",
            f"{got['items']} over {got['values']} values" + (" (2 per value: --quick)" if s.quick else "")
            if got
            else ("2 per value (--quick)" if s.quick else "all"),
        ),
        ("roles", f"{s.roles} personas (seed {s.seed}) and the no-role prompt"),
        ("steering-grid roles", f"{s.grid_roles} personas and the no-role prompt"),
        (
            "SAE",
            s.sae
            if not trained
            else f"{sae['reused']}, reused: {sae['path']}"
            if sae.get("reused")
            else f"trained by the recipe at layer {s.layer}"
            + (f": {sae['path']}" if sae.get("path") else ""),
        ),
        ("SAE layer", f"blocks.{s.layer}.hook_resid_post"),
        (
            "SAE training",
            sae_train
            if trained and not sae.get("reused")
            else "not used (the recipe SAE was reused)"
            if trained
            else "not used (an SAE was given)",
        ),
        ("features steered", s.features),
        ("grid strength", f"{fmt(s.strength)} x typical activation, added at ' your values'"),
        ("generation strength", f"{fmt(s.gen_strength)} x typical activation, every position"),
        ("graph bootstrap", f"{s.bootstrap} role resamples; {s.null} null draws"),
        ("human reference", s.human or "none given: Schwartz's circle (adjacent values linked)"),
        ("seed", s.seed),
        ("quick", "yes (--quick: fewer items, roles, features and resamples)" if s.quick else "no"),
    ]


def build(p: Page) -> Section:
    conf = p.ws.read_json(".", "config.json")
    versions = [(k, v or "not installed") for k, v in conf["versions"].items()]
    blocks = [heading("Inputs"), kv(inputs(p.ws)), heading("Library versions"), kv(versions)]
    return {"title": "Settings", "blocks": blocks}
