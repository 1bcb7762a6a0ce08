"""Searches first: background work in the serving process steps aside while searches run.

Niceness gives a search's threads the cores, but not Python's GIL: a sync's
fetch, decode and upsert threads take it between their native calls, and a
search waits its turn behind each (measured: example search p95 8 ms idle,
65 ms during a sync; benchmarks/RESULTS.md). So a sync's threads check the gate
before each step that needs the interpreter and wait, for a bounded time, while
any search is in flight. The bound keeps a sync moving under a constant stream
of searches; a step already running is never interrupted.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

# Longest a background step waits for searches to finish before it runs anyway.
MAX_WAIT_S = 0.25


class SearchGate:
    """Counts searches in flight; `yield_to_searches` waits until there are none (bounded)."""

    def __init__(self, max_wait_s: float = MAX_WAIT_S) -> None:
        self.max_wait_s = max_wait_s
        self._cond = threading.Condition()
        self._active = 0

    @contextlib.contextmanager
    def search(self) -> Iterator[None]:
        with self._cond:
            self._active += 1
        try:
            yield
        finally:
            with self._cond:
                self._active -= 1
                if self._active == 0:
                    self._cond.notify_all()

    @property
    def active(self) -> int:
        return self._active

    def yield_to_searches(self) -> bool:
        """Wait while searches run, at most `max_wait_s`; True if it waited at all."""
        if self._active == 0:  # the common case costs no lock
            return False
        with self._cond:
            self._cond.wait_for(lambda: self._active == 0, timeout=self.max_wait_s)
        return True
