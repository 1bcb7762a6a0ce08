"""Opening an asset's bytes by its URI's scheme: file:// (under a root), s3://, http(s):// (allowed hosts).

Every connector that holds URIs rather than bytes opens them here, so the
rules are the same everywhere: a file must resolve under the source's root,
links included; an http(s) host (and every host a redirect leads to) must be
allowed; s3:// objects are read with the s3 connector's client. A source may
add its own schemes (`sql://`: the bytes are in the row itself).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from connectors.base import AssetRecord, Blob
from connectors.deps import missing_dependency
from service.errors import AssetError

if TYPE_CHECKING:
    from connectors.s3_client import S3Client
    from connectors.s3_config import S3Connection

MAX_FETCH_BYTES = 200 * 1024 * 1024
MAX_REDIRECTS = 5
Opener = Callable[[AssetRecord], Blob]

_MAGIC = [
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF8", "image/gif"),
    (b"BM", "image/bmp"),
    (b"II*\x00", "image/tiff"),
    (b"MM\x00*", "image/tiff"),
]


def sniff_media_type(data: bytes) -> str | None:
    """The image type from the first bytes, for bytes that came without a file name."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return next((mt for magic, mt in _MAGIC if data.startswith(magic)), None)


def read_under(root: Path, path: Path, *, shown: str) -> bytes:
    """The bytes of `path`, refused when it resolves (links followed) outside `root`."""
    resolved = path.resolve()
    if not resolved.is_relative_to(root):
        raise AssetError(f"{shown!r} resolves outside the source's root {root}")
    try:
        return resolved.read_bytes()
    except FileNotFoundError:
        raise AssetError(f"file {resolved} does not exist") from None
    except OSError as exc:
        raise AssetError(f"cannot read file {resolved}: {exc.strerror or exc}") from None


class UriOpener:
    """Opens the URIs one source names; thread-safe, one per connector.

    Args:
        root: plain paths and file:// URIs must resolve under it; None refuses them.
        allow_http_hosts: hosts (`host`, `host:port` or `*.domain`) http(s) URIs may name.
        s3: how to reach s3:// objects; None means the standard AWS credential chain.
        connect_timeout_s: the http(s) connect timeout.
        schemes: the source's own schemes and how to open them.
    """

    def __init__(
        self,
        *,
        root: Path | None = None,
        allow_http_hosts: Sequence[str] = (),
        s3: S3Connection | None = None,
        connect_timeout_s: float = 10.0,
        schemes: Mapping[str, Opener] | None = None,
    ) -> None:
        self.root = root
        self.allow_http_hosts = [h.lower() for h in allow_http_hosts]
        self.s3_connection = s3
        self.connect_timeout_s = connect_timeout_s
        self._own = dict(schemes or {})
        self._lock = threading.Lock()
        self._http: Any = None
        self._s3: S3Client | None = None

    def open(self, record: AssetRecord) -> Blob:
        """The bytes at `record.uri`, typed by `record.media_type` or by their first bytes.

        Raises:
            AssetError: this URI cannot be read (missing, refused, not allowed).
            SourceError: s3:// only, when the store as a whole failed.
        """
        uri = record.uri
        if not uri:
            raise AssetError("the asset has no URI (an empty column?)")
        scheme = urlsplit(uri).scheme.lower()
        if scheme in self._own:
            return self._own[scheme](record)
        if scheme == "s3":
            blob = self._s3_client().get_uri(uri, max_bytes=MAX_FETCH_BYTES)
            return Blob(
                data=blob.data, metadata=blob.metadata, media_type=record.media_type or blob.media_type
            )
        if scheme in ("", "file"):
            data = self._read_file(uri)
        elif scheme in ("http", "https"):
            data = self._read_http(uri)
        else:
            known = ", ".join(sorted({"file", "s3", "http", "https", *self._own}))
            raise AssetError(f"URI scheme {scheme!r} is not supported ({known})")
        return Blob(data=data, media_type=record.media_type or sniff_media_type(data))

    def close(self) -> None:
        """Close the HTTP client; S3 clients are shared per connection settings."""
        if self._http is not None:
            self._http.close()

    # -- schemes -------------------------------------------------------------

    def _read_file(self, uri: str) -> bytes:
        if self.root is None:
            raise AssetError("rows hold file paths but the source has no `root`; set one")
        parts = urlsplit(uri)
        if parts.scheme and parts.netloc not in ("", "localhost"):
            raise AssetError(f"file URI on another host ({parts.netloc}) is not supported")
        # An absolute path replaces the root in the join; read_under still checks it.
        path = self.root / unquote(parts.path) if parts.scheme else self.root / uri
        return read_under(self.root, path, shown=uri)

    def _s3_client(self) -> S3Client:
        with self._lock:
            if self._s3 is None:
                try:
                    from connectors.s3_client import S3Client
                    from connectors.s3_config import S3Connection
                except ImportError as exc:
                    raise missing_dependency(exc, needed_for="reading s3:// URIs") from exc
                # Without `s3` settings, the standard AWS credential chain applies.
                self._s3 = S3Client.from_config(self.s3_connection or S3Connection.model_validate({}))
            return self._s3

    def _http_client(self) -> Any:
        with self._lock:
            if self._http is None:
                try:
                    import httpx
                except ImportError as exc:
                    raise missing_dependency(exc, needed_for="reading http(s):// URIs") from exc
                timeout = httpx.Timeout(30.0, connect=self.connect_timeout_s)
                self._http = httpx.Client(timeout=timeout, follow_redirects=False)
            return self._http

    def _read_http(self, uri: str) -> bytes:
        import httpx

        client = self._http_client()
        for _ in range(MAX_REDIRECTS + 1):
            self._allowed_host(uri)
            try:
                with client.stream("GET", uri) as resp:
                    if resp.is_redirect and "location" in resp.headers:
                        uri = str(resp.url.join(resp.headers["location"]))
                        continue  # the next host is checked against the allowlist too
                    if resp.status_code != 200:
                        raise AssetError(f"GET {uri} answered HTTP {resp.status_code}")
                    return _bounded_body(resp.iter_bytes(), uri)
            except httpx.HTTPError as exc:
                raise AssetError(f"GET {uri} failed: {type(exc).__name__}: {exc}") from None
        raise AssetError(f"GET {uri}: more than {MAX_REDIRECTS} redirects")

    def _allowed_host(self, uri: str) -> None:
        parts = urlsplit(uri)
        host = (parts.hostname or "").lower()
        netloc = f"{host}:{parts.port}" if parts.port else host
        for allowed in self.allow_http_hosts:
            if allowed in (host, netloc) or (allowed.startswith("*.") and host.endswith(allowed[1:])):
                return
        raise AssetError(f"host {host!r} is not in the source's `allow_http_hosts`; add it to fetch {uri}")


def _bounded_body(chunks: Iterator[bytes], uri: str) -> bytes:
    out = bytearray()
    for chunk in chunks:
        out += chunk
        if len(out) > MAX_FETCH_BYTES:
            raise AssetError(f"GET {uri}: body is larger than {MAX_FETCH_BYTES:,} bytes")
    return bytes(out)
