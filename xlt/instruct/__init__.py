"""Instruction tuning data: templates, meta-datasets of task clusters per language, seqio tasks."""
