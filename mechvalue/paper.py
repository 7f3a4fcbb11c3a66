"""The study's published Gemma settings (from its paper and released files): kept SAE features,
values left out of Table 1, the Table 2 role, and the value -> feature maps behind its pies."""

KEPT_FEATURES = [14351, 1025, 2965, 10096, 1341, 1975, 10605, 14049, 1312, 4752]
TABLE1_EXCLUDED = ["Anxiety Disorder", "Achievement", "Empathy", "Organization", "Political", "Economic",
                   "Social Complexity"]  # fmt: skip
TABLE2_ROLE = "Mary Holt"
PIE_POSITIVE = {"Positive coping": 1975, "Theoretical": 10096, "Uncertainty Avoidance": 1312, "Aesthetic": 1312,
                "Breadth of Interest": 10096, "Religious": 1312, "Social": 14049, "Understanding": 4752,
                "Resilience": 1341, "Social Cynicism": 14049}  # fmt: skip
PIE_NEGATIVE = {"Aesthetic": 10605, "Resilience": 4752, "Social Cynicism": 4752, "Positive coping": 10096,
                "Religious": 1341, "Breadth of Interest": 14049, "Understanding": 1975, "Theoretical": 1975,
                "Uncertainty Avoidance": 4752, "Social": 1975}  # fmt: skip
