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

Warmed by the optimizer. The child process that builds the HNSW graph on a copy of the shard
(edge_store.py) also writes these files for the copy with `stage`, into a staging directory
beside it; `install` moves them into place when the copy is swapped in, if the generation
is still the one `stamp` gave when the copy was taken (every write that can change vectors,
the journaled ones included, moves it). So the first full read after a sync maps a file
instead of converting every point.
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
from typing import Any, NamedTuple

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

    def stamp(self) -> int | None:
        """The generation to hand `install` with files built from a copy of the engine taken now
        (the caller holds writes still); None if a vector write is running (its files could miss it)."""
        with self._lock:
            return self.generation if self._writers == 0 else None

    def install(self, staged: Path, *, stamp: int | None) -> list[str]:
        """Move the caches that `stage` wrote into `staged`, from a copy of the engine taken at
        `stamp`, into place; only if no vector write began since (so the copy's vectors are the
        engine's). Returns the spaces installed; `staged` is left for the caller to remove.
        A space that has a cache already keeps it (built at the same generation: the same rows)."""
        if stamp is None or not staged.is_dir():
            return []
        done: list[str] = []
        with self._lock:
            if self.generation != stamp or self._writers:
                return []
            for file in sorted(staged.glob("*.json")):
                manifest = _manifest(file)
                if manifest is None or self.on_disk(manifest["space"]):
                    continue
                stem = manifest["stem"]
                try:
                    self.path.mkdir(parents=True, exist_ok=True)
                    _publish(
                        self.path,
                        {**manifest, "generation": stamp},
                        npy=staged / f"{stem}.npy",
                        ids=staged / f"{stem}.ids",
                    )
                except OSError:  # not installed: the first read builds it, as without staging
                    continue
                self._on_disk = True
                done.append(manifest["space"])
        return done

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
        built = _fill(self.path, space, dim=dim, expected=expected, pages=pages())
        npy, ids_file = _tmp_files(self.path, built.stem)
        ids, matrix, extra = built.ids, built.matrix, built.extra
        with self._lock:
            if built.fits and quiet and self.generation == start:
                manifest = _manifest_of(space, dim=dim, count=expected, stem=built.stem)
                _publish(self.path, {**manifest, "generation": start}, npy=npy, ids=ids_file)
                self._on_disk = True
                result = np.load(self.path / f"{built.stem}.npy", mmap_mode="r")
                self._held[space] = (start, ids, result)
                return ids, result
        npy.unlink(missing_ok=True)  # the mapping stays readable after the unlink
        ids_file.unlink(missing_ok=True)
        if len(ids) < expected:
            return ids, np.asarray(matrix[: len(ids)])
        if extra:
            return ids, np.concatenate([matrix, np.asarray(extra, dtype=np.float32).reshape(-1, dim)])
        return ids, matrix


def stage(folder: Path, space: str, *, dim: int, count: int, pages: Iterable[Page]) -> bool:
    """Write the cache files of `space` into `folder`, a staging directory that
    `VectorCache.install` moves into place later. An optimize's child process calls it with
    the pages of its copy of the shard (it loads this file by path: stdlib and numpy only, not
    the service package). False, and nothing left, if `pages` do not hold `count` points."""
    if count == 0:
        return False
    built = _fill(folder, space, dim=dim, expected=count, pages=pages)
    npy, ids_file = _tmp_files(folder, built.stem)
    if not built.fits:
        npy.unlink(missing_ok=True)
        ids_file.unlink(missing_ok=True)
        return False
    _publish(folder, _manifest_of(space, dim=dim, count=count, stem=built.stem), npy=npy, ids=ids_file)
    return True


class _Filled(NamedTuple):
    stem: str
    ids: list[str]
    matrix: np.memmap
    extra: list[Any]  # points past the expected count
    fits: bool  # exactly the expected count, and the files are durable


def _fill(folder: Path, space: str, *, dim: int, expected: int, pages: Iterable[Page]) -> _Filled:
    """Write the rows of `pages` into a new build's temporary files (`_tmp_files`) in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    stem = f"{_key(space)}-{uuid.uuid4().hex[:12]}"
    npy, ids_file = _tmp_files(folder, stem)
    # Filled in place on disk: no pool-sized array in the process's own memory.
    matrix = np.lib.format.open_memmap(npy, mode="w+", dtype=np.float32, shape=(expected, dim))
    ids: list[str] = []
    extra: list[Any] = []  # points written since the count (the build is then not kept)
    for page in pages:
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
    return _Filled(stem, ids, matrix, extra, fits)


def _tmp_files(folder: Path, stem: str) -> tuple[Path, Path]:
    return folder / f"{stem}.npy.tmp", folder / f"{stem}.ids.tmp"


def _manifest_of(space: str, *, dim: int, count: int, stem: str) -> dict[str, Any]:
    return {"space": space, "dim": dim, "count": count, "generation": None, "stem": stem}


def _manifest(file: Path) -> dict[str, Any] | None:
    """A staged manifest, if it is whole and names its own space."""
    try:
        manifest = json.loads(file.read_text())
        ok = file.name == f"{_key(manifest['space'])}.json" and isinstance(manifest["stem"], str)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    return manifest if ok else None


def _publish(folder: Path, manifest: dict[str, Any], *, npy: Path, ids: Path) -> None:
    """Give a build's durable matrix and ids their names in `folder`, then name them in the
    space's manifest; earlier builds of the space are unlinked (not one still being filled)."""
    key, stem = _key(manifest["space"]), manifest["stem"]
    for stale in folder.glob(f"{key}-*"):
        if not stale.name.startswith(stem) and not stale.name.endswith(".tmp"):
            stale.unlink(missing_ok=True)
    os.replace(npy, folder / f"{stem}.npy")
    os.replace(ids, folder / f"{stem}.ids")
    _write_json(folder / f"{key}.json", manifest)


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
