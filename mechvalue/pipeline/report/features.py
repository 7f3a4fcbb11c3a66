"""Section: the SAE, the features steered, their effects on each value, and the features most
correlated with each value across roles. Effects within the measurement noise are masked."""

from __future__ import annotations

import numpy as np
import pandas as pd

from mechvalue.analysis.noise import noise_for
from mechvalue.pipeline.grounds import MIN_CORR_ROLES
from mechvalue.pipeline.report.blocks import figures, fmt, heading, kv, note, table, text, warning
from mechvalue.pipeline.report.common import Page, Section, flat_warning, moves_warning, sae_warning
from mechvalue.pipeline.workspace import Workspace

STAGE, ORDER = "tables", 30
TITLE = "SAE and the features behind each value"
SAE_LABELS = {
    "l0": "L0 (features active per token)",
    "fve": "fraction of variance explained",
    "dead_frac": "share of dead features",
    "loss_clean": "LM loss, clean (nats/token)",
    "loss_spliced": "LM loss with the SAE spliced in (nats/token)",
    "delta_loss": "LM loss increase (nats/token)",
    "rows": "training activations",
}


def feature_effects(ws: Workspace) -> dict:
    """The features section's data: effects (feature x value), gradient attribution, top correlated
    features per value, and the agreement of attribution patching with the measured effects."""
    from mechvalue.analysis.attribution import attribution_agreement

    eff = ws.read_csv("tables", "interventional.csv")
    emat = eff.pivot_table(index="feature", columns="value", values="effect", sort=False)
    grad = ws.read_csv("features", "gradient_attribution.csv").set_index("feature")[emat.columns]
    corr = ws.read_csv("features", "correlation.csv").set_index("feature")[emat.columns]
    top = pd.DataFrame(
        [
            {"value": v}
            | {
                k: f"feature {f} (r {corr.loc[f, v]:+.2f})"
                for k, f in zip(("1st", "2nd", "3rd"), corr[v].abs().nlargest(3).index)
            }
            for v in corr.columns
        ]
    )
    feats = pd.DataFrame(ws.read_json("features", "features.json")["features"])
    moves = emat.abs().idxmax(axis=1)
    feats["moves most"] = [moves.get(f, "") for f in feats["feature"]]
    return {
        "effects": emat,
        "gradient": grad,
        "top_correlated": top,
        "features": feats,
        "agreement": attribution_agreement(grad.loc[emat.index], emat),
        "n_roles": ws.cfg.grid_roles + 1,
        "strength": float(eff["strength"].iloc[0]) if len(eff) else float("nan"),
    }


def sae_metrics(m: dict) -> list[tuple[str, object]]:
    got = m.get("metrics", {})
    out = [(SAE_LABELS[k], got[k]) for k in SAE_LABELS if k in got]
    how = f" ({m['reused']}, reused)" if m.get("reused") else "" if m.get("trained") else " (given)"
    out.append(("SAE", m["path"] + how))
    return out


def within_noise(effects: pd.DataFrame, strength: float, noise: dict) -> pd.DataFrame:
    """The effects with a cell NaN (masked) where its change, effect x strength, is within the
    noise of a difference of two scores of that value."""
    change = effects * strength
    keep = change.abs() > pd.Series({v: noise_for(noise, v) for v in effects.columns})
    return effects.where(keep)


def _correlation_blocks(p: Page, fe: dict) -> list[dict]:
    gr, corr_info = p.gr, p.ws.read_json("features", "features.json").get("correlation", {})
    heads = [
        heading("Features most correlated with each value across roles (answer-position activation vs score)")
    ]
    if corr_info.get("used", fe["n_roles"] >= MIN_CORR_ROLES and not gr.no_role_variance):
        return [*heads, table(fe["top_correlated"])]
    cached = corr_info.get("roles")
    if cached is not None and cached < MIN_CORR_ROLES:
        why = (
            f"activations were cached for {cached} of this run's {gr.roles + 1} prompts (its {gr.roles} "
            "personas and the no-role prompt)"
            + ("; --quick caches the no-role prompt alone" if p.ws.cfg.quick else "")
        )
    else:
        why = "no value varies between roles beyond the noise"
    return [
        *heads,
        warning(
            f"Not shown and not used to choose features: {why}. Correlations across roles need the "
            f"activations of at least {MIN_CORR_ROLES} roles and scores that vary between them."
        ),
    ]


def build(p: Page) -> Section:
    from mechvalue.analysis.plots import heatmap

    ws, gr = p.ws, p.gr
    fe, m = feature_effects(ws), ws.read_json("sae", "sae.json")
    blocks = [kv(sae_metrics(m))]
    blocks += sae_warning(
        gr, "The features below, their effects and attributions describe a poor reconstruction."
    )
    blocks += flat_warning(
        gr, "Correlations with roles are undefined and feature effects are changes of one shared profile."
    )
    feats = fe["features"].rename(
        columns={
            "reason": "chosen by",
            "typical": "typical activation",
            "span_activation": "mean activation at ' your values'",
        }
    )
    if not gr.steering_moves:
        feats = feats.drop(columns=["moves most"])
    blocks += [heading("Steered features"), table(feats, 2)]
    blocks.append(
        note(
            f"Effects: change of each value score per typical unit of 'add' steering at ' your values' "
            f"(strength {fmt(fe['strength'])}), mean over {fe['n_roles']} roles; {gr.noise_text()}."
        )
    )
    if not gr.steering_moves:
        blocks.append(
            warning(
                moves_warning(gr) + " The effects heatmap is not drawn, the attribution "
                "agreement is not computed, and no feature is said to move a value."
            )
        )
    else:
        heatmap(
            within_noise(fe["effects"], fe["strength"], gr.noise),
            p.d / "effects.png",
            "interventional effect per typical unit of steering",
            label="score change per typical unit",
        )
        blocks.append(
            figures(
                (
                    p.d / "effects.png",
                    "rows: steered features, columns: values; red lowers, blue raises; grey: the change is "
                    "within the measurement noise of that value",
                )
            )
        )
        r = fe["agreement"]
        blocks.append(
            text(
                f"Attribution patching (one backward pass, the derivative at strength 0) against the measured "
                f"effects: r = {fmt(r)} over {fe['effects'].size} feature x value cells (a linear estimate; far "
                "from 0 it need not hold)."
            )
            if np.isfinite(r)
            else warning(
                "Attribution patching against the measured effects: undefined (the gradients or the effects "
                "do not vary across features and values)."
            )
        )
    grad = fe["gradient"]
    if np.isfinite(grad.to_numpy(float)).any():
        blocks += [
            heading("Gradient attribution (score change per typical unit, linear estimate)"),
            table(grad.reset_index(), 4),
        ]
    blocks += _correlation_blocks(p, fe)
    return {"title": TITLE, "blocks": blocks}
