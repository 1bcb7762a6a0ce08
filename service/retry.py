"""The one retry policy of every boundary: bounded attempts, backoff with jitter, transient errors only."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")


def is_transient(exc: BaseException) -> bool:
    """Whether `exc` is marked worth retrying (service.errors.TransientError); nothing else is."""
    return getattr(exc, "transient", False) is True


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how patiently a call is retried.

    Attributes:
        attempts: tries in all, the first included (1 = never retry).
        base_s: the wait before the second try; it doubles with every try after.
        max_s: the longest wait between two tries.
        jitter: wait a random time between half and all of the backoff, so the
            replicas and threads that failed together do not retry together.
    """

    attempts: int = 3
    base_s: float = 0.2
    max_s: float = 5.0
    jitter: bool = True

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError(f"attempts must be at least 1, not {self.attempts}")
        if not 0 <= self.base_s <= self.max_s:
            raise ValueError(f"need 0 <= base_s <= max_s, not {self.base_s} and {self.max_s}")

    def delay(self, attempt: int) -> float:
        """The wait after failed try number `attempt` (1-based)."""
        backoff = min(self.max_s, self.base_s * 2 ** (attempt - 1))
        # "Equal jitter": half fixed, so a server that is restarting gets a real pause.
        return backoff / 2 + random.uniform(0, backoff / 2) if self.jitter else backoff

    def call(
        self,
        fn: Callable[[], T],
        *,
        what: str,
        retry_if: Callable[[BaseException], bool] = is_transient,
        sleep: Callable[[float], None] | None = None,
    ) -> T:
        """`fn()`, tried again after a transient failure until it succeeds or the tries run out.

        Args:
            fn: the call; it must be safe to repeat (a read, or a write by id).
            what: names the call in the log line of each retry.
            retry_if: which failures to retry; by default those marked transient.
            sleep: how to wait (time.sleep by default).

        Raises:
            whatever `fn` raised last: a terminal error at once, a transient one
            when no try is left.
        """
        for attempt in range(1, self.attempts + 1):
            try:
                return fn()
            except Exception as exc:
                if attempt == self.attempts or not retry_if(exc):
                    raise
                wait = self.delay(attempt)
                detail = getattr(exc, "detail", None) or f"{type(exc).__name__}: {exc}"
                log.warning(
                    "%s failed (%s); try %d of %d in %.2f s", what, detail, attempt + 1, self.attempts, wait
                )
                # Looked up at call time so a test can stand in for the clock.
                (sleep or time.sleep)(wait)
        raise AssertionError("unreachable: the last try returns or raises")
