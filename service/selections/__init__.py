"""Selections: choosing which assets to label next under a budget, as a named, exportable set."""
