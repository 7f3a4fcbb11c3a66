"""The study design: value inventories, personas, prompt templates, the study's published settings,
and the value-table schema every later stage reads and writes."""
