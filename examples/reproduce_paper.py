"""Reproduce the study's Gemma results from its released tables: the causal graph, Table 1,
Table 2 (exact, then with all roles, CIs and p-values) and the direction pies.

    python examples/reproduce_paper.py [--release ../shared/data/paper_release] [--out runs/paper]
"""

import argparse
import json
from pathlib import Path

import pandas as pd

import mechvalue
from mechvalue import paper_settings as paper


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument(
        "--release", default=str(Path(__file__).resolve().parents[2] / "shared/data/paper_release")
    )
    ap.add_argument("--out", default="runs/paper")
    a = ap.parse_args()
    rel = Path(a.release)
    train, test = (
        mechvalue.load_value_table(rel / "ans_gemma_train_formal.csv"),
        mechvalue.load_value_table(rel / "ans_gemma_test_formal.csv"),
    )
    refs = rel / "reference_graphs.json"

    pc, graph = mechvalue.study_graph(train, paper.KEPT_FEATURES)
    same = mechvalue.compare_graphs(graph, mechvalue.load_graph(refs, "gemma"))
    print(
        f"graph: PC {len(pc.edges)} edges -> reduced {len(graph.edges)}; vs the authors' graph SHD {same['shd']}"
    )

    t1 = mechvalue.table1(train, test, paper.KEPT_FEATURES, paper.TABLE1_EXCLUDED)
    print("Table 1 mean similarity:", {k: round(v, 2) for k, v in t1["mean_similarity"].items()})

    learned, human = mechvalue.load_graph(refs, "gemma"), mechvalue.load_graph(refs, "human1")
    t2 = mechvalue.table2(test, learned, human, paper.TABLE2_ROLE, paper.KEPT_FEATURES)
    for half in ("prompt", "sae"):
        for g in ("learned", "reference"):
            print(
                f"Table 2 {half:6s} {g:9s} expected {t2[half][g]['expected']:.3f} unexpected {t2[half][g]['unexpected']:.3f}"
            )
    improved = {
        g: mechvalue.table2_improved(test, gr, paper.KEPT_FEATURES, 1000, 1000)
        for g, gr in (("learned", learned), ("human1", human))
    }
    for g, res in improved.items():
        for half in ("sae", "prompt"):
            r = res[half]
            print(
                f"Table 2 improved {g:7s} {half:6s} gap {r['gap']:+.3f} CI95 [{r['gap_ci95'][0]:+.3f}, {r['gap_ci95'][1]:+.3f}] "
                f"p(gap<=0) {r['p_gap_positive']:.3f} p(vs random graph) {r['p_vs_random_graph']:.3f}"
            )

    pies = {
        s: mechvalue.direction_pies(test, pd.read_csv(rel / f"ans_gemma_test_compare_{s}_s1.csv"), m)
        for s, m in (("positive", paper.PIE_POSITIVE), ("negative", paper.PIE_NEGATIVE))
    }
    print("pies:", json.dumps(pies))
    out = Path(a.out) / "paper.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "pc_edges": len(pc.edges),
                "edges": len(graph.edges),
                "table1": t1["mean_similarity"],
                "table2": {h: t2[h] for h in ("prompt", "sae")},
                "table2_improved": improved,
                "pies": pies,
            },
            indent=2,
            default=lambda x: x.tolist(),
        )
    )  # numpy numbers and arrays
    print(f"wrote {Path(a.out) / 'paper.json'}")


if __name__ == "__main__":
    main()
