"""Pausing Python's cyclic garbage collector over a bulk step that makes no reference cycles.

Parsing, checking and writing 100,000 annotations, or reading 100,000 payloads, allocates
hundreds of thousands of small dicts and lists that hold no cycle; the collector, triggered
by every 700 allocations, walks the growing heap again and again meanwhile (measured: ~5 % of
a 100,000-record import, a third of an evaluation's read). Reference counting still frees
everything as usual; only the cycle search waits until the step ends.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator


@contextlib.contextmanager
def paused() -> Iterator[None]:
    """The collector off for the block, then back as it was (another thread's pause that began
    first turns it back on when that one ends: never left off)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
