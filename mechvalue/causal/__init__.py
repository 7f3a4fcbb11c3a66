"""Causal value graphs: data, discovery, the study's protocol, stability, comparison."""
