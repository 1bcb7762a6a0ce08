"""The catalog: sources synced into the index, searched, listed and laid out."""
