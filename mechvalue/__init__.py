"""mechvalue: measure, graph and steer the values an LLM expresses."""

__version__ = "0.1.0"
