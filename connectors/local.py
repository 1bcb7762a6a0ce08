"""The local connector: every image under a directory tree."""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

from pydantic import field_validator

from connectors.base import AssetRecord, Blob, ConnectorConfig, Listing
from connectors.sidecar import is_image_key, media_type, parse_sidecar, sidecar_keys
from connectors.uris import read_under
from service.errors import InvalidConfig, SourceError


class LocalConfig(ConnectorConfig):
    """A directory tree; globs (fnmatch, `*` crosses directories) match the relative path."""

    path: Path
    include: list[str] = ["*"]
    exclude: list[str] = []
    sidecars: bool = True

    @field_validator("path")
    @classmethod
    def _absolute(cls, v: Path) -> Path:
        return v.expanduser().resolve()


class LocalConnector:
    """Lists image files under `path`; never follows a link out of the root."""

    kind: ClassVar[str] = "local"
    config_model: ClassVar[type[ConnectorConfig]] = LocalConfig

    def __init__(self, name: str, config: LocalConfig) -> None:
        self.name = name
        self.config = config
        self.root = config.path

    def check(self) -> None:
        # A wrong path is the user's input (422), not a source that failed (502).
        if not self.root.exists():
            raise InvalidConfig(
                f"path: directory {self.root} does not exist on the machine Loupe runs on; "
                "check the source's path"
            )
        if not self.root.is_dir():
            raise InvalidConfig(f"path: {self.root} is not a directory; point the source at a folder")
        if not os.access(self.root, os.R_OK | os.X_OK):
            raise SourceError(f"directory {self.root} is not readable by this process")

    def list(self, *, cursor: str | None = None, full: bool = False) -> Listing:
        self.check()
        return Listing(records=self._records(), complete=True)

    def fetch(self, record: AssetRecord) -> Blob:
        # By key, not by the stored file:// URI, so a record from the index reads under
        # today's root; connectors.uris applies the one rule for files (links included).
        data = read_under(self.root, self.root / record.key, shown=record.key)
        return Blob(data=data, media_type=record.media_type)

    # -- listing ---------------------------------------------------------

    def _wanted(self, rel: str) -> bool:
        inc = any(fnmatch.fnmatchcase(rel, p) for p in self.config.include)
        return inc and not any(fnmatch.fnmatchcase(rel, p) for p in self.config.exclude)

    def _walk(self) -> Iterator[tuple[str, os.stat_result, set[str]]]:
        """(relative key, stat, sibling names) for every file; links checked against the root."""
        seen_dirs: set[tuple[int, int]] = set()
        stack = [self.root]
        while stack:
            directory = stack.pop()
            try:
                st = directory.stat()
                if (st.st_dev, st.st_ino) in seen_dirs:
                    continue  # a link loop
                seen_dirs.add((st.st_dev, st.st_ino))
                entries = list(os.scandir(directory))
            except OSError:
                continue
            names = {e.name for e in entries}
            for entry in sorted(entries, key=lambda e: e.name):
                path = Path(entry.path)
                if entry.is_symlink() and not path.resolve().is_relative_to(self.root):
                    continue
                try:
                    if entry.is_dir():
                        stack.append(path)
                    elif entry.is_file():
                        rel = path.relative_to(self.root).as_posix()
                        yield rel, entry.stat(), names
                except OSError:
                    continue

    def _records(self) -> Iterator[AssetRecord]:
        for rel, st, siblings in self._walk():
            if not is_image_key(rel) or not self._wanted(rel):
                continue
            version = f"{st.st_size}:{st.st_mtime_ns}"
            metadata: dict[str, Any] = {}
            if self.config.sidecars:
                sidecar = self._sidecar(rel, siblings)
                if sidecar is not None:
                    metadata, sidecar_version = sidecar
                    version += f"+{sidecar_version}"
            yield AssetRecord(
                key=rel,
                uri=(self.root / rel).as_uri(),
                version=version,
                size_bytes=st.st_size,
                modified_at=datetime.fromtimestamp(st.st_mtime, UTC),
                media_type=media_type(rel),
                metadata=metadata,
            )

    def _sidecar(self, rel: str, siblings: set[str]) -> tuple[dict[str, Any], str] | None:
        for candidate in sidecar_keys(rel):
            if candidate.rsplit("/", 1)[-1] not in siblings:
                continue
            path = self.root / candidate
            try:
                st = path.stat()
                data = parse_sidecar(path.read_bytes())
            except (OSError, ValueError) as exc:
                return {"_sidecar_error": str(exc)}, "bad"
            return data, f"{st.st_size}:{st.st_mtime_ns}"
        return None
