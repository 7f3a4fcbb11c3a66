"""Value measurement: scoring questionnaire items across roles (log-prob or generate-and-parse),
and the steering grid (roles x conditions) in the study's table schema."""
