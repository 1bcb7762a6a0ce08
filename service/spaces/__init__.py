"""Vector spaces (bring your own embeddings): the registry, vector imports, and model-filled spaces."""
