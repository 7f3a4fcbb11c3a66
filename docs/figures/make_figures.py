"""The docs' figures, from the study's released tables and the 151 humans' PVQ-40 answers (no model):
the study's causal graph as reproduced, the authors' own graph, the human PVQ-40 graph, and the
direction pies of SAE steering. Deterministic; CPU; a few seconds.

    .venv/bin/python docs/figures/make_figures.py [--shared ../shared/data] [--out docs/figures]
"""

import argparse
from pathlib import Path

import pandas as pd

import mechvalue
from mechvalue import paper_settings as paper
from mechvalue.analysis.plots import draw_graph, pie
from mechvalue.causal.human import human_graph

ROOT = Path(__file__).resolve().parents[2]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--shared", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent))
    a = ap.parse_args()
    rel, out = Path(a.shared) / "paper_release", Path(a.out)
    train = mechvalue.load_value_table(rel / "ans_gemma_train_formal.csv")
    test = mechvalue.load_value_table(rel / "ans_gemma_test_formal.csv")

    _, graph = mechvalue.study_graph(train, paper.KEPT_FEATURES)
    authors = mechvalue.load_graph(rel / "reference_graphs.json", "gemma")
    shd = mechvalue.compare_graphs(graph, authors)["shd"]
    draw_graph(graph, out / "study_graph.png", f"The study's Gemma graph, reproduced: {len(graph.edges)} edges, SHD {shd} to the authors'")
    human = human_graph(Path(a.shared) / "human" / "PVQ40.csv")
    draw_graph(human, out / "human_graph.png", f"151 adults, PVQ-40 (PC, alpha .05): {len(human.edges)} edges")
    for sign, maps in (("positive", paper.PIE_POSITIVE), ("negative", paper.PIE_NEGATIVE)):
        steered = pd.read_csv(rel / f"ans_gemma_test_compare_{sign}_s1.csv")
        shares = mechvalue.direction_pies(test, steered, maps)
        pie(shares["sae"], out / f"pie_sae_{sign}.png", f"SAE steering ({sign}): direction of value changes")
        print(sign, shares)
    print("wrote", sorted(p.name for p in out.glob("*.png")))


if __name__ == "__main__":
    main()
