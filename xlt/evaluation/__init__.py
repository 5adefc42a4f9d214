"""Zero-shot evaluation: option scoring (rank classification), generation, metrics and reports."""
