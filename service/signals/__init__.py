"""Curation signals on the index: the neighbour graph and the scores and groups built on it."""
