"""The steering comparison's parts, one job per module (`mechvalue.analysis.steer_compare` runs them).

`base` (what a steering method is), `methods` (the `METHODS` registry: prompting, DiffMean, CAA,
the three SAE feature choices), `features` (choosing those features from train items), `spec`
(the comparison's settings), `fluency` (the fluency and speed costs), `stats` (the effect
statistics), `design` (what a design measures, its cost in forward tokens and its CI widths),
`report` (best strengths, the verdict, plots and the report section).
"""
