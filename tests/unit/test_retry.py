"""The one retry policy: transient errors are tried again with growing, jittered waits; nothing else is."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from service.errors import (
    ExportError,
    ExportUnavailable,
    IndexUnavailable,
    InvalidConfig,
    LoupeError,
    MissingDependency,
    SourceError,
    SourceUnavailable,
    TransientError,
)
from service.retry import RetryPolicy, is_transient


class Flaky:
    """Raises the given errors in turn, then answers; counts its calls."""

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


def no_wait(waits: list[float]) -> Callable[[float], None]:
    """A stand-in for the clock that records each wait instead of sleeping."""
    return waits.append


def test_the_tree_marks_what_is_transient() -> None:
    transient = [SourceUnavailable("x"), ExportUnavailable("x"), IndexUnavailable("x", transient=True)]
    terminal = [SourceError("x"), IndexUnavailable("x"), ExportError("x"), InvalidConfig("x")]
    terminal += [MissingDependency("x"), LoupeError("x"), ValueError("x"), ConnectionError("x")]
    assert all(is_transient(e) for e in transient)
    assert isinstance(SourceUnavailable("x"), TransientError) and isinstance(
        ExportUnavailable("x"), TransientError
    )
    assert not any(is_transient(e) for e in terminal)
    # the mark does not change what the error is, nor its HTTP status
    assert isinstance(SourceUnavailable("x"), SourceError) and SourceUnavailable.status_code == 503
    assert isinstance(ExportUnavailable("x"), ExportError) and ExportUnavailable.status_code == 502
    # marked where it is raised: the kind the API reports stays IndexUnavailable
    assert not IndexUnavailable.transient and type(IndexUnavailable("x", transient=True)) is IndexUnavailable


def test_a_transient_failure_is_retried_then_succeeds() -> None:
    waits: list[float] = []
    flaky = Flaky(SourceUnavailable("busy"), SourceUnavailable("busy"))
    assert RetryPolicy(attempts=3).call(flaky, what="list", sleep=no_wait(waits)) == "ok"
    assert flaky.calls == 3 and len(waits) == 2


def test_a_terminal_failure_is_not_retried() -> None:
    waits: list[float] = []
    flaky = Flaky(SourceError("AccessDenied"))
    with pytest.raises(SourceError, match="AccessDenied"):
        RetryPolicy(attempts=5).call(flaky, what="list", sleep=no_wait(waits))
    assert flaky.calls == 1 and waits == []
    unmarked = Flaky(ConnectionError("third-party errors are mapped first, never retried raw"))
    with pytest.raises(ConnectionError):
        RetryPolicy(attempts=5).call(unmarked, what="list", sleep=no_wait(waits))
    assert unmarked.calls == 1


def test_attempts_are_bounded_and_the_last_error_is_raised() -> None:
    waits: list[float] = []
    flaky = Flaky(*(SourceUnavailable(f"try {i}") for i in range(1, 10)))
    with pytest.raises(SourceUnavailable, match="try 4"):
        RetryPolicy(attempts=4).call(flaky, what="get", sleep=no_wait(waits))
    assert flaky.calls == 4 and len(waits) == 3
    once = Flaky(SourceUnavailable("busy"))
    with pytest.raises(SourceUnavailable):
        RetryPolicy(attempts=1).call(once, what="get", sleep=no_wait(waits))
    assert once.calls == 1


def test_backoff_doubles_up_to_the_cap_with_jitter_in_the_upper_half() -> None:
    plain = RetryPolicy(attempts=8, base_s=0.5, max_s=3.0, jitter=False)
    assert [plain.delay(n) for n in range(1, 6)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    jittered = RetryPolicy(attempts=8, base_s=0.5, max_s=3.0)
    for n in range(1, 6):
        samples = {jittered.delay(n) for _ in range(200)}
        assert all(plain.delay(n) / 2 <= s <= plain.delay(n) for s in samples)
        assert len(samples) > 1  # spread apart, so replicas do not retry in step


def test_a_custom_predicate_decides_what_retries() -> None:
    waits: list[float] = []
    flaky = Flaky(KeyError("k"), KeyError("k"))
    policy = RetryPolicy(attempts=3)
    assert policy.call(flaky, what="x", retry_if=lambda e: isinstance(e, KeyError), sleep=no_wait(waits))
    assert flaky.calls == 3


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"attempts": 0}, "attempts must be at least 1"), ({"base_s": 2.0, "max_s": 1.0}, "base_s <= max_s")],
)
def test_a_policy_that_cannot_work_is_refused(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]
