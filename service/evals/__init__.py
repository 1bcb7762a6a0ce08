"""Evaluations: a predictions set scored against a ground-truth set, overall, per class and per slice."""
