"""Loupe's exception tree; the API maps it to HTTP in one handler.

    LoupeError
    ├── NotFound                    404  (SourceNotFound, AssetNotFound, JobNotFound, ExportNotFound,
    │                                     LabelSetNotFound)
    ├── Conflict                    409  (SourceExists, IndexLocked, JobLost, LabelSetExists)
    ├── JobCancelled                a running job stops at its next step (never sent to a client)
    ├── InvalidQuery                422  a filter, search or request that cannot run as written
    │   └── InvalidAnnotations      422  an annotation import refused whole: names the line and field
    ├── InvalidConfig               422  a source or setting that is wrong as given
    │   └── MissingDependency       422  the kind or driver needs a package: names the `pip install` line
    ├── PayloadTooLarge             413
    ├── UnsupportedMedia            415
    ├── SourceError                 502  the source itself failed (bad credentials, no such bucket)
    │   └── SourceUnavailable   [T] 503  cannot be reached or is busy (refused, timed out, 5xx, throttled)
    ├── AssetError                  one asset could not be read or decoded (a report line)
    ├── EncoderError                weights missing or mismatched
    ├── IndexUnavailable       (T)  503  the vector index cannot be reached or used
    ├── StateUnavailable       [T]  503  the state store (SQLite file, PostgreSQL) cannot be reached
    ├── ExportError                 502  a labeling target refused or failed
    │   └── ExportUnavailable   [T] 502  the target did not answer, or answered 429/5xx
    └── TransientError              the mark of [T]: worth retrying as it is; mixed into those classes

Transient or terminal is decided here, once: `error.transient` is True on
TransientError's subclasses [T], and `service.retry` retries those and nothing
else. (T): one class covers both, so the boundary says which when it raises
(`IndexUnavailable(detail, transient=True)` for a Qdrant server that did not
answer or answered 502/503/504; not for one that refused the API key), which
keeps the error kind the API reports unchanged.

Every error carries a message that says what is wrong and how to fix it.
"""

from __future__ import annotations


class LoupeError(Exception):
    """Base of every error Loupe raises on purpose; terminal unless it mixes in TransientError."""

    status_code = 400
    transient: bool = False

    def __init__(self, detail: str, *, transient: bool | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        if transient is not None:
            self.transient = transient


class TransientError(LoupeError):
    """Mixed into errors that may pass if the same call is made again a little later."""

    transient: bool = True


class NotFound(LoupeError):
    status_code = 404


class SourceNotFound(NotFound):
    pass


class AssetNotFound(NotFound):
    pass


class JobNotFound(NotFound):
    pass


class ExportNotFound(NotFound):
    pass


class LabelSetNotFound(NotFound):
    pass


class Conflict(LoupeError):
    status_code = 409


class LabelSetExists(Conflict):
    pass


class SourceExists(Conflict):
    pass


class JobLost(Conflict):
    """Another runner took over a job this one was running."""


class JobCancelled(LoupeError):
    """A user cancelled the running job; raised at its next step, never to a client."""


class IndexLocked(Conflict):
    """Another process owns the embedded index."""


class InvalidQuery(LoupeError):
    status_code = 422

    def __init__(self, detail: str, *, path: str | None = None) -> None:
        super().__init__(f"{path}: {detail}" if path else detail)
        self.path = path


class InvalidAnnotations(InvalidQuery):
    """Annotations that cannot be imported; nothing of the call was written."""


class InvalidConfig(LoupeError):
    status_code = 422


class MissingDependency(InvalidConfig):
    """An optional package is not installed; the detail names the `pip install` line."""


class PayloadTooLarge(LoupeError):
    status_code = 413


class UnsupportedMedia(LoupeError):
    status_code = 415


class SourceError(LoupeError):
    """The source as a whole failed: the sync stops and says why."""

    status_code = 502


class SourceUnavailable(SourceError, TransientError):
    """The source cannot be reached or is busy right now; its settings may well be right."""

    status_code = 503


class AssetError(LoupeError):
    """One asset failed; the sync reports it and goes on."""

    status_code = 422


class EncoderError(LoupeError):
    status_code = 503


class IndexUnavailable(LoupeError):
    status_code = 503


class StateUnavailable(TransientError):
    """The state store cannot be reached or answer now (a PostgreSQL outage, a locked SQLite file)."""

    status_code = 503


class ExportError(LoupeError):
    status_code = 502


class ExportUnavailable(ExportError, TransientError):
    """A labeling target did not answer, or answered that it is busy (429, 5xx)."""
