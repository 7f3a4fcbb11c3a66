"""Analysis of value tables: the study's Table 1, Table 2 and pies (exact and improved), feature
attribution and side effects, plots."""
