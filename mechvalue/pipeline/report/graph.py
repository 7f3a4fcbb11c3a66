"""Section: the value graph learned from the scores against the reference graph."""

from __future__ import annotations

from mechvalue.analysis.status import RULE, failing
from mechvalue.pipeline.report.blocks import figures, fmt, heading, kv, note, table, text, warning
from mechvalue.pipeline.report.common import Page, Section, flat_warning

STAGE, ORDER = "graph", 20
TITLE = "Value graph: learned vs reference"


def build(p: Page) -> Section:
    ws, gr = p.ws, p.gr
    g = ws.read_json("graph", "summary.json")
    if not g.get("learned", True):
        return {"title": TITLE, "blocks": [warning(f"No graph: {g['why']}.")]}
    cmp, obs = g["compare"], g["compare"]["observed"]
    vals = g.get("values") or gr.values
    blocks = [
        note(
            f"Stands on: PC (Fisher-z, alpha .05) over {len(vals)} values and {g['rows']} unsteered rows "
            f"(each role once, and the no-role prompt); edges are tested on correlations across roles."
        )
    ]
    blocks += flat_warning(gr, "The graph is learned from these scores.")
    if g.get("no_role_variance"):
        blocks.append(
            warning(
                f"Left out of the graph (no between-role variance beyond the noise): "
                f"{', '.join(g['no_role_variance'])}."
            )
        )
    bad = [v for v in vals if v in failing(gr.status)]
    if bad and (ws.out / "graph" / "learned.json").exists():
        from mechvalue.causal.graph import load_graph

        edges = load_graph(ws.out / "graph" / "learned.json").edges
        touching = [e for e in edges if e.source in bad or e.target in bad]
        blocks.append(
            warning(
                f"{len(touching)} of {len(edges)} edges touch a graph node whose value fails the pass rule "
                f"({RULE}; each value's status is at the top): {len(bad)} of the graph's {len(vals)} nodes "
                f"fail ({', '.join(bad)})."
            )
        )
    blocks += [
        figures(
            (
                ws.out / "graph" / "learned.png",
                "learned graph; edge width = share of role-bootstrap resamples",
            ),
            (ws.out / "graph" / "reference.png", f"reference: {g['reference']}"),
        ),
        text(
            f"{g['edges']} learned edges, {g['edges_recurring_80pct']} of them in at least 80% of "
            f"{ws.cfg.bootstrap} role-bootstrap resamples."
        ),
        kv(
            [
                ("structural Hamming distance (each differing pair counts 1)", obs["shd"]),
                (
                    "skeleton precision / recall / F1",
                    f"{fmt(obs['skeleton_precision'], 2)} / "
                    f"{fmt(obs['skeleton_recall'], 2)} / {fmt(obs['skeleton_f1'], 2)}",
                ),
                ("p(SHD this small) among random graphs with as many edges", cmp["random_graph"]["p_shd"]),
                ("p(F1 this large) among random graphs", cmp["random_graph"]["p_skeleton_f1"]),
                (
                    "p(SHD this small) with the learned graph's labels permuted",
                    cmp["permuted_labels"]["p_shd"],
                ),
                ("null draws", cmp["n_null"]),
            ]
        ),
    ]
    freqs = ws.read_csv("graph", "edge_frequencies.csv").head(15)
    if len(freqs):
        freqs = freqs.assign(freq=100 * freqs["freq"], skeleton_freq=100 * freqs["skeleton_freq"]).rename(
            columns={
                "kind": "edge kind",
                "freq": "this kind, % of resamples",
                "skeleton_freq": "any kind, % of resamples",
            }
        )
        blocks += [heading("Most stable edges"), table(freqs, 0)]
    return {"title": TITLE, "blocks": blocks}
