"""Corpora, languages and splits that xlt trains and evaluates on."""
