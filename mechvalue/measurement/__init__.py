"""Value measurement: scoring questionnaire items across roles (log-prob or generate-and-parse),
and the steering grid (roles x conditions) in the study's table schema. The public call is
`mechvalue.measure` (`mechvalue.research.measure`)."""
