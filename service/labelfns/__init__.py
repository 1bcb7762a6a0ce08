"""Labeling functions: auto-labels from similar examples or labelled neighbours, with a measured precision."""
