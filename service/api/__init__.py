"""The HTTP API: the only package that knows FastAPI."""
