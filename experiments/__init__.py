"""Experiment drivers built on xlt's entry points (``python -m experiments.<name> --gin_file=...``)."""
