"""Every vector of a space, kept beside the embedded index as a float32 matrix on disk.

Why: reading all the vectors of a space out of qdrant-edge costs 35-80 us a 512-d point
(the binding turns each record's vector into a dict of Python float lists; the engine's own
scroll is ~3 us a point), 227 s at 1,000,000; the binding has no numpy or bytes API. So
the first full read after a vector write builds this cache and later ones map it
(`np.load(mmap_mode="r")`: file-backed pages, not the process's anonymous memory, and a
second read is instant).

Layout, under the index directory beside its shards (edge_store.py):

    vectors/<key>.json          the manifest: space, dim, count, generation, token
    vectors/<key>-<token>.npy   count x dim float32, rows in the engine's scroll (id) order
    vectors/<key>-<token>.ids   the ids of those rows, one a line

Validity. `generation` counts the writes that can change vectors (in memory; the index
wraps each in `writing()`); payload-only writes do not touch it. The first such write
after a cache was built or found unlinks every file here (manifests first) and fsyncs
the directory before the write reaches the engine, so a crash can never leave a stale
cache that looks valid: files that exist at open are current. A build records the
generation when it starts and keeps its files only if no write began or ran meanwhile.
A manifest whose count differs from the engine's count of the space is not used either
(a write by a program that does not know of the cache).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

Page = Sequence[tuple[str, Any]]  # (id, vector as the engine gives it) per point
Vectors = tuple[list[str], np.ndarray]


class VectorCache:
    """The cached vectors of an index directory's spaces; thread-safe."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()  # generation, writers, files, held
        self._building = threading.Lock()  # one build at a time: a second reader waits for it
        self.generation = 0
        self._writers = 0
        self._held: dict[str, tuple[int, list[str], np.ndarray]] = {}
        for tmp in path.glob("*.tmp"):  # a build's files left by a crash
            tmp.unlink(missing_ok=True)
        self._on_disk = path.is_dir() and any(path.iterdir())

    @contextlib.contextmanager
    def writing(self) -> Iterator[None]:
        """Around every write that can change vectors: the cache is dropped before it."""
        with self._lock:
            self.generation += 1
            self._writers += 1
            self._held.clear()
            if self._on_disk:
                _drop(self.path)
                self._on_disk = False
        try:
            yield
        finally:
            with self._lock:
                self._writers -= 1
                self.generation += 1

    def on_disk(self, space: str) -> bool:
        """Whether `space` has a saved cache (tests, and what the index reports)."""
        return (self.path / f"{_key(space)}.json").exists()

    def get(
        self, space: str, *, dim: int, count: Callable[[], int], pages: Callable[[], Iterable[Page]]
    ) -> Vectors:
        """The ids and vectors of `space`: held, mapped from disk, or built from `pages` (the
        engine's points with a vector in the space, in scroll order; `count` is their number)."""
        with self._building:
            with self._lock:
                start, quiet = self.generation, self._writers == 0
                held = self._held.get(space)
                if held is not None and held[0] == start:
                    return held[1], held[2]
            expected = count()
            with self._lock:
                if self._on_disk and quiet and self.generation == start:
                    found = _load(self.path, space, dim=dim, count=expected)
                    if found is not None:
                        self._held[space] = (start, *found)
                        return found
            return self._build(space, dim=dim, expected=expected, pages=pages, start=start, quiet=quiet)

    def _build(
        self,
        space: str,
        *,
        dim: int,
        expected: int,
        pages: Callable[[], Iterable[Page]],
        start: int,
        quiet: bool,
    ) -> Vectors:
        if expected == 0:  # nothing to map (np.memmap refuses an empty array); nothing kept
            rows = [(i, v) for page in pages() for i, v in page]
            vectors = np.asarray([v for _, v in rows], dtype=np.float32).reshape(-1, dim)
            return [i for i, _ in rows], vectors
        self.path.mkdir(parents=True, exist_ok=True)
        stem = f"{_key(space)}-{uuid.uuid4().hex[:12]}"
        npy, ids_file = self.path / f"{stem}.npy.tmp", self.path / f"{stem}.ids.tmp"
        # Filled in place on disk: no pool-sized array in the process's own memory.
        matrix = np.lib.format.open_memmap(npy, mode="w+", dtype=np.float32, shape=(expected, dim))
        ids: list[str] = []
        extra: list[Any] = []  # points written since the count (the build is then not kept)
        for page in pages():
            room = max(0, expected - len(ids))
            if room:
                part = page[:room]
                matrix[len(ids) : len(ids) + len(part)] = [v for _, v in part]
            extra.extend(v for _, v in page[room:])
            ids.extend(i for i, _ in page)
        fits = len(ids) == expected
        if fits:
            try:
                _write_files(matrix, npy, ids, ids_file)
            except FileNotFoundError:  # a write dropped the cache meanwhile
                fits = False
        with self._lock:
            keep = fits and quiet and self.generation == start
            if keep:
                manifest = {"space": space, "dim": dim, "count": expected, "generation": start, "stem": stem}
                for stale in self.path.glob(f"{_key(space)}-*"):
                    if not stale.name.startswith(stem):
                        stale.unlink(missing_ok=True)  # an earlier build whose manifest is replaced
                os.replace(npy, self.path / f"{stem}.npy")
                os.replace(ids_file, self.path / f"{stem}.ids")
                _write_json(self.path / f"{_key(space)}.json", manifest)
                self._on_disk = True
                result = np.load(self.path / f"{stem}.npy", mmap_mode="r")
                self._held[space] = (start, ids, result)
                return ids, result
        npy.unlink(missing_ok=True)  # the mapping stays readable after the unlink
        ids_file.unlink(missing_ok=True)
        if len(ids) < expected:
            return ids, np.asarray(matrix[: len(ids)])
        if extra:
            return ids, np.concatenate([matrix, np.asarray(extra, dtype=np.float32).reshape(-1, dim)])
        return ids, matrix


def _key(space: str) -> str:
    """A file name for a space (encoder names may hold any character): readable, and unique."""
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", space)[:48]
    return f"{safe}.{hashlib.sha1(space.encode()).hexdigest()[:8]}"


def _load(path: Path, space: str, *, dim: int, count: int) -> Vectors | None:
    """The saved cache of `space` if it is whole and of the right shape and count; else None."""
    try:
        manifest = json.loads((path / f"{_key(space)}.json").read_text())
        stem = str(manifest["stem"])
        if manifest["space"] != space or manifest["dim"] != dim or manifest["count"] != count:
            return None
        matrix = np.load(path / f"{stem}.npy", mmap_mode="r")
        text = (path / f"{stem}.ids").read_text()
    except (OSError, ValueError, KeyError, TypeError):
        return None
    ids = text.split("\n") if text else []
    if matrix.dtype != np.float32 or matrix.shape != (count, dim) or len(ids) != count:
        return None
    return ids, matrix


def _write_files(matrix: np.memmap, npy: Path, ids: list[str], ids_file: Path) -> None:
    """Make a build's matrix and ids durable before a manifest may name them."""
    matrix.flush()
    with open(npy, "rb+") as f:
        os.fsync(f.fileno())
    with open(ids_file, "w") as f:
        f.write("\n".join(ids))
        f.flush()
        os.fsync(f.fileno())


def _drop(path: Path) -> None:
    """Unlink every cache file, manifests first, and make the unlinks durable."""
    if not path.is_dir():
        return
    files = sorted(path.iterdir(), key=lambda p: p.suffix != ".json")
    for f in files:
        f.unlink(missing_ok=True)
    _fsync_dir(path)


def _write_json(target: Path, value: dict[str, Any]) -> None:
    tmp = target.with_name(target.name + ".tmp")
    with open(tmp, "w") as f:
        json.dump(value, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, target)
    _fsync_dir(target.parent)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
