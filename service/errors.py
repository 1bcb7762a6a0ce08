"""Loupe's exception tree; the API maps it to HTTP in one handler.

    LoupeError
    ├── NotFound                    404  (SourceNotFound, AssetNotFound, JobNotFound, ExportNotFound)
    ├── Conflict                    409  (SourceExists, IndexLocked, JobLost)
    ├── InvalidQuery                422  a filter, search or request that cannot run as written
    ├── InvalidConfig               422  a source or setting that is wrong as given
    ├── PayloadTooLarge             413
    ├── UnsupportedMedia            415
    ├── SourceError                 the source itself failed (unreachable, bad credentials)
    │   └── SourceUnavailable       503 when raised from a request
    ├── AssetError                  one asset could not be read or decoded (a report line)
    ├── EncoderError                weights missing or mismatched
    ├── IndexUnavailable            503  the vector index cannot be reached
    └── ExportError                 a labeling target refused or failed

Every error carries a message that says what is wrong and how to fix it.
"""

from __future__ import annotations


class LoupeError(Exception):
    """Base of every error Loupe raises on purpose."""

    status_code = 400

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


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


class Conflict(LoupeError):
    status_code = 409


class SourceExists(Conflict):
    pass


class JobLost(Conflict):
    """Another runner took over a job this one was running."""


class IndexLocked(Conflict):
    """Another process owns the embedded index."""


class InvalidQuery(LoupeError):
    status_code = 422

    def __init__(self, detail: str, *, path: str | None = None) -> None:
        super().__init__(f"{path}: {detail}" if path else detail)
        self.path = path


class InvalidConfig(LoupeError):
    status_code = 422


class PayloadTooLarge(LoupeError):
    status_code = 413


class UnsupportedMedia(LoupeError):
    status_code = 415


class SourceError(LoupeError):
    """The source as a whole failed: the sync stops and says why."""

    status_code = 502


class SourceUnavailable(SourceError):
    status_code = 503


class AssetError(LoupeError):
    """One asset failed; the sync reports it and goes on."""

    status_code = 422


class EncoderError(LoupeError):
    status_code = 503


class IndexUnavailable(LoupeError):
    status_code = 503


class ExportError(LoupeError):
    status_code = 502
