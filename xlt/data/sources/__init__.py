"""Readers for raw text sources: packaged corpora (Bible, CLDR) and public dataset formats."""
