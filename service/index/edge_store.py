"""Where an embedded index lives: its directory lock, its live shard, and optimize-by-copy.

Layout of the directory (one process owns it, by an exclusive flock on LOCK):

    LOCK          the owner's pid
    CURRENT       the name of the live shard directory
    shard-<n>/    a qdrant-edge shard (config, segments, WAL)
    vectors/      every vector of a space as a mapped matrix, for full reads (vector_cache.py)
    shard-<n>.vectors/  while an optimize runs: that matrix, written from its copy

Why optimize works on a copy. qdrant-edge builds its HNSW graph only in
`EdgeShard.optimize()`, and the binding holds the GIL for the whole call (as
for every call): measured here, a Python thread ticked once during a 6 s
optimize, so every thread of the process, the API's included, would stop for
the minutes a large optimize takes. Opening the live directory from a second
process is unsafe (two engines writing one WAL and one set of segments). So
`optimize()` flushes, copies the shard directory (writes wait, searches go
on), lets a niced child process optimize the copy, then loads the copy, replays
the writes that arrived meanwhile (kept in a journal), switches CURRENT
atomically and removes the old directory. Searches keep answering from the old
shard throughout; the switch blocks them for one `load` (about 0.5 s at 100k).
A crash at any point leaves CURRENT naming a complete shard; leftovers are
removed at the next open. The copy costs the shard's size in disk while it runs.

The child also writes the vector cache of the copy (the spaces without one), since
building it in a request converts every point (vector_cache.py): installed at the
switch if no vector write began since the copy, discarded otherwise; its staging
directory is never read at an open, only removed. It is installed too when the
optimize found nothing to change and the copy is dropped (its vectors are the
live ones all the same): a sync too small to index still leaves the cache warm.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import qdrant_edge as qe

from service.errors import IndexLocked, IndexUnavailable, InvalidQuery, LoupeError
from service.index import vector_cache
from service.index.vector_cache import VectorCache

# Engine messages that mean the request, not the engine, is at fault.
_INPUT_ERRORS = (
    "dimension error",
    "not existing vector",
    "no appropriate index",
    "wrong input",
    "bad request",
    "bad input",
    "failed to parse",
    "format error",
    "no point with id",
)
_MISSING_POINT = "no point with id"
RUN = 256  # writes per hold of the locks in apply_each (~25 ms of engine time)
WRITES = "writes.jsonl"  # write_through's file for the child; a crash's leftover is removed at open
CHECK_S = 2.0  # how often write_through asks its caller whether to go on while the child works
_SHARD = re.compile(r"shard-(\d+)")
# Runs in the child: niced so searches and syncs keep the CPU; prints whether anything changed.
# Arguments: the copy, the staging directory, vector_cache.py (loaded by path: the service
# package would import pydantic and the settings), {space: dim} of the caches to write, and the
# file of payload writes to apply before optimizing ("" for none).
_OPTIMIZER = """\
import json, os, sys
from pathlib import Path
os.nice(10)
from qdrant_edge import CountRequest, EdgeShard, Filter, HasVectorCondition, ScrollRequest
shard = EdgeShard.load(sys.argv[1])
wrote = False
if sys.argv[5]:  # payload writes to apply first (EdgeStore.write_through): a key line, then [id, payload]
    from qdrant_edge import UpdateOperation
    with open(sys.argv[5]) as f:
        key = json.loads(f.readline())["key"]
        for line in f:
            pid, payload = json.loads(line)
            try:
                shard.update(UpdateOperation.set_payload([pid], payload, key=key))
            except Exception as exc:
                if "no point with id" not in str(exc).lower():
                    raise
                continue  # deleted since the values were computed: nothing to write
            wrote = True
changed = shard.optimize() or wrote
spaces = json.loads(sys.argv[4])
if spaces:
    import importlib.util
    spec = importlib.util.spec_from_file_location("loupe_vector_cache", sys.argv[3])
    cache = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cache)

def pages(space, has):
    cursor = None
    while True:
        request = ScrollRequest(
            offset=cursor, limit=1000, filter=has, with_payload=False, with_vector=[space]
        )
        records, cursor = shard.scroll(request)
        yield [(str(r.id), r.vector[space]) for r in records]
        if cursor is None:
            return

for space, dim in spaces.items():
    has = Filter(must=[HasVectorCondition(space)])
    count = shard.count(CountRequest(exact=True, filter=has))
    cache.stage(Path(sys.argv[2]), space, dim=dim, count=count, pages=pages(space, has))
shard.close()
print(changed)
"""


@contextlib.contextmanager
def edge_errors(what: str) -> Iterator[None]:
    """Map qdrant-edge's exceptions (plain Exception with a message) onto Loupe's tree."""
    try:
        yield
    except LoupeError:
        raise
    except (ValueError, TypeError, OverflowError) as exc:
        raise InvalidQuery(f"cannot {what}: {exc}") from exc
    except Exception as exc:
        if any(s in str(exc).lower() for s in _INPUT_ERRORS):
            raise InvalidQuery(f"cannot {what}: {exc}") from exc
        raise IndexUnavailable(f"the embedded index failed to {what}: {exc}") from exc


class EdgeStore:
    """The live shard of one directory, swappable by `optimize()`; thread-safe.

    Raises:
        IndexLocked: another process (or another EdgeStore) holds the directory.
    """

    def __init__(self, path: Path, *, config: Any) -> None:
        self.path = path
        self._lock = threading.RLock()  # every engine call, and the swap of `_shard`
        self._writes = threading.Lock()  # orders writes against an optimize's copy and swap
        self._optimizing = threading.Lock()
        self._journal: list[Any] | None = None
        self._child: subprocess.Popen[str] | None = None
        self._closing = False
        self._lockfd = _lock_dir(path)
        try:
            self.dir, self._shard = self._open(config)
            with edge_errors("read the shard info"):
                info = self._shard.info()
        except BaseException:
            os.close(self._lockfd)
            raise
        self.vectors = VectorCache(path / "vectors")  # once the directory is ours: it cleans up
        # A changed configuration (e.g. LOUPE_INDEX__QUANTIZATION) applies at the next optimize.
        self.dirty = info.indexed_vectors_count < info.points_count or self.reconfigured

    def _open(self, config: Any) -> tuple[Path, Any]:
        current = _read_current(self.path)
        (self.path / WRITES).unlink(missing_ok=True)
        for stale in self.path.glob("shard-*"):
            if stale.name != current:  # an optimize's copy, or its staged vectors, left by a crash
                shutil.rmtree(stale, ignore_errors=True)
        self.reconfigured = False
        if current is not None:
            shard_dir = self.path / current
            stored = _read_config(shard_dir)
            # The engine stores the new settings on load, as long as the vectors stay the same
            # (another model's vectors are refused by the index, not rewritten here).
            update = config if _same_vectors(stored, config) else None
            with edge_errors(f"load the index at {shard_dir}"):
                shard = qe.EdgeShard.load(str(shard_dir), update)
            self.reconfigured = update is not None and _read_config(shard_dir) != stored
            if not (self.path / "CURRENT").exists():
                _write_current(self.path, current)
            return self.path / current, shard
        shard_dir = self.path / "shard-1"
        with edge_errors(f"create the index at {shard_dir}"):
            shard = qe.EdgeShard.create(str(shard_dir), config)
        _write_current(self.path, shard_dir.name)
        return shard_dir, shard

    def vector_sizes(self) -> dict[str, int]:
        """Named dense vectors of the live shard and their dimensions."""
        return {name: size for name, (size, _) in self.vector_params().items()}

    def vector_params(self) -> dict[str, tuple[int, str]]:
        """Named dense vectors of the live shard: (dimension, distance as the engine spells it)."""
        return _vector_params(_read_config(self.dir))

    @contextlib.contextmanager
    def shard(self) -> Iterator[Any]:
        """The live shard, held still for one read."""
        with self._lock:
            if self._shard is None:
                raise IndexUnavailable(f"the index at {self.path} is closed")
            yield self._shard

    def apply(self, op: Any, what: str) -> None:
        """One write; journaled while an optimize runs so its copy can catch up."""
        with self._writes, self.shard() as shard, edge_errors(what):
            shard.update(op)
            if self._journal is not None:
                self._journal.append(op)
            self.dirty = True

    def apply_each(self, ops: Sequence[Any], what: str, *, skip_missing: bool = False) -> None:
        """Many writes, each its own operation, under one hold of the locks per `RUN` of them
        (taking them per write cost as much as a small write; a run is short enough that
        searches still get their turn). With `skip_missing`, an operation refused because its
        point does not exist is left out (the engine wrote nothing of it)."""
        for start in range(0, len(ops), RUN):
            with self._writes, self.shard() as shard, edge_errors(what):
                self.dirty = True
                for op in ops[start : start + RUN]:
                    try:
                        shard.update(op)
                    except Exception as exc:
                        if skip_missing and _MISSING_POINT in str(exc).lower():
                            continue
                        raise
                    if self._journal is not None:
                        self._journal.append(op)

    def flush(self) -> None:
        with self.shard() as shard, edge_errors("flush"):
            shard.flush()

    # -- optimize ------------------------------------------------------------

    def optimize(self) -> None:
        """Build the HNSW graph in a child process; blocks the caller, not searches."""
        self._optimize(writes=None, check=None)

    def write_through(
        self,
        items: Iterable[tuple[str, Mapping[str, Any]]],
        *,
        key: str | None,
        check: Callable[[], None] | None,
    ) -> None:
        """Many points' payload writes, applied by the optimizer's child to the copy it optimizes.

        Why: the engine never changes a point inside an HNSW-indexed segment; it moves the point
        (vector and payload) into an appendable segment first, whose payload indexes live in the
        memory of the process that writes. A value written to every point of a large index (a
        signal) would so hold ~1.2-1.6 KB a point in this process (measured with seven indexed
        fields, benchmarks/bench_payload_write.py), ~1.5 GiB at 1,000,000, and leave every point
        unindexed until the next optimize. Here the child takes the move and the rebuild, and this
        process loads the optimized copy: the values appear all at once, at the switch, with the
        graph already built. Writes that arrive meanwhile are journaled and replayed on the copy
        (after these values). Ids that no longer exist are skipped. `check()` is called every
        `CHECK_S` while the child works; an exception from it (a cancelled job) stops the child,
        drops the copy (nothing written) and propagates.
        """
        tmp = self.path / WRITES
        try:
            with open(tmp, "w") as f:
                f.write(json.dumps({"key": key}) + "\n")
                for pid, payload in items:
                    f.write(json.dumps([pid, dict(payload)], allow_nan=False) + "\n")
        except (TypeError, ValueError) as exc:
            tmp.unlink(missing_ok=True)
            raise InvalidQuery(
                f"cannot write payloads: {exc} (values are JSON: numbers, strings, booleans, "
                "lists and objects; no NaN)"
            ) from exc
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise IndexUnavailable(f"cannot stage payload writes in {tmp}: {exc}") from exc
        try:
            self._optimize(writes=tmp, check=check)
        finally:
            tmp.unlink(missing_ok=True)
        if self._closing:  # close() stopped the child: the values were not written
            raise IndexUnavailable(f"the index at {self.path} was closed before the payload writes finished")

    def _optimize(self, *, writes: Path | None, check: Callable[[], None] | None) -> None:
        with self._optimizing:
            copied = self._copy(force=writes is not None)
            if copied is None:
                return
            work, stamp, spaces = copied
            try:
                changed = self._run_optimizer(work, spaces, writes=writes, check=check)
            except BaseException:
                self._finish(work, changed=False, stamp=None)
                self.dirty = True  # the copy's flag was taken; the next optimize looks again
                raise
            self._finish(work, changed=changed, stamp=stamp)

    def _copy(self, *, force: bool = False) -> tuple[Path, int | None, dict[str, int]] | None:
        """The copy to optimize, the vector cache's stamp, and the spaces whose cache to write."""
        with self._writes:
            if not self.dirty and not force:
                return None
            self.flush()
            numbers = [int(m[1]) for p in self.path.iterdir() if (m := _SHARD.fullmatch(p.name))]
            work = self.path / f"shard-{max(numbers, default=0) + 1}"
            shutil.rmtree(_staged(work), ignore_errors=True)  # its files would pass for the copy's
            try:
                shutil.copytree(self.dir, work)
            except OSError as exc:
                shutil.rmtree(work, ignore_errors=True)
                raise IndexUnavailable(
                    f"cannot copy the index to build its search graph ({exc}); it needs as much "
                    f"free space again as {self.dir} takes; until then new points are scanned"
                ) from exc
            self._journal, self.dirty, self.reconfigured = [], False, False
            stamp = self.vectors.stamp()
            sizes = {name: size for name, (size, _) in _vector_params(_read_config(work)).items()}
            spaces = {} if stamp is None else {n: d for n, d in sizes.items() if not self.vectors.on_disk(n)}
            return work, stamp, spaces

    def _run_optimizer(
        self, work: Path, spaces: dict[str, int], *, writes: Path | None, check: Callable[[], None] | None
    ) -> bool:
        args = [str(work), str(_staged(work)), vector_cache.__file__, json.dumps(spaces), str(writes or "")]
        child = self._child = subprocess.Popen(
            [sys.executable, "-c", _OPTIMIZER, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        while True:
            try:
                out, err = child.communicate(timeout=None if check is None else CHECK_S)
                break
            except subprocess.TimeoutExpired:
                try:
                    check()  # type: ignore[misc]  # a timeout is only asked for with a check
                except BaseException:
                    child.kill()
                    child.communicate()
                    self._child = None
                    raise
        code, self._child = child.returncode, None
        if code != 0:
            if self._closing:
                return False  # close() stopped it
            tail = err.strip().splitlines()[-1:] or [f"exit status {code}"]
            raise IndexUnavailable(f"building the search graph failed: {tail[0]}")
        return out.strip() == "True"

    def _finish(self, work: Path, *, changed: bool, stamp: int | None) -> None:
        """Switch to the optimized copy, replaying the writes it missed; or drop it. Either way
        install the vector cache written from the copy if its `stamp` still holds (no vector
        write began since the copy, so the journal holds none), and remove its staging."""
        with self._writes:
            try:
                self._switch(work, changed=changed)
                if self._shard is not None and not self._closing:
                    self.vectors.install(_staged(work), stamp=stamp)
            finally:
                shutil.rmtree(_staged(work), ignore_errors=True)

    def _switch(self, work: Path, *, changed: bool) -> None:
        journal, self._journal = self._journal or [], None
        if not changed or self._shard is None:
            shutil.rmtree(work, ignore_errors=True)
            self.dirty = self.dirty or bool(journal)
            return
        fresh = self._load_and_replay(work, journal)
        with self._lock:
            old, old_dir = self._shard, self.dir
            self._shard, self.dir = fresh, work
            _write_current(self.path, work.name)
        with edge_errors("close the previous index"):
            old.close()
        shutil.rmtree(old_dir, ignore_errors=True)
        self.dirty = bool(journal)

    def _load_and_replay(self, work: Path, journal: list[Any]) -> Any:
        fresh = None
        try:
            with edge_errors("load the optimized index"):
                fresh = qe.EdgeShard.load(str(work))
                for op in journal:
                    fresh.update(op)
            return fresh
        except BaseException:
            if fresh is not None:
                fresh.close()
            shutil.rmtree(work, ignore_errors=True)
            self.dirty = True
            raise

    def close(self) -> None:
        """Flush, close and release the directory; stops a running optimize."""
        self._closing = True
        child = self._child
        if child is not None:
            with contextlib.suppress(ProcessLookupError):
                child.kill()
        with self._writes, self._lock:
            if self._shard is None:
                return
            shard, self._shard = self._shard, None
            try:
                with edge_errors("close"):
                    shard.close()
            finally:
                os.close(self._lockfd)


def _lock_dir(path: Path) -> int:
    path.mkdir(parents=True, exist_ok=True)
    fd = os.open(path / "LOCK", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            raise IndexUnavailable(f"cannot lock {path}: {exc}") from exc
        raise IndexLocked(
            f"the index at {path} is open in another process (pid {holder}); stop it or "
            "point LOUPE_URL at its API (e.g. LOUPE_URL=http://127.0.0.1:8000)"
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode(), 0)
    return fd


def _read_current(path: Path) -> str | None:
    """The live shard directory's name; None for a new index.

    Without CURRENT, a single shard directory is the live one (a crash right after
    creating it); several mean CURRENT was lost, and guessing could pick a half-made copy.
    """
    shards = sorted(p.name for p in path.glob("shard-*") if p.is_dir() and _SHARD.fullmatch(p.name))
    try:
        name = (path / "CURRENT").read_text().strip()
    except FileNotFoundError:
        if len(shards) > 1:
            raise IndexUnavailable(
                f"{path / 'CURRENT'} is missing; write into it the name of the live shard "
                f"directory (one of {', '.join(shards)})"
            ) from None
        name = shards[0] if shards else ""
    if name and name not in shards:
        raise IndexUnavailable(f"{path / 'CURRENT'} names {name!r}, which does not exist")
    return name or None


def _staged(work: Path) -> Path:
    """Where the optimizer writes the vector cache of the copy `work`."""
    return work.with_name(f"{work.name}.vectors")


def _write_current(path: Path, name: str) -> None:
    """Atomically point CURRENT at `name` (write, fsync, rename, fsync the directory)."""
    tmp = path / "CURRENT.tmp"
    with open(tmp, "w") as f:
        f.write(name + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path / "CURRENT")
    dirfd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(dirfd)
    finally:
        os.close(dirfd)


def _read_config(shard_dir: Path) -> dict[str, Any]:
    try:
        return dict(json.loads((shard_dir / "edge_config.json").read_text()))
    except (OSError, ValueError):
        return {}


def stored_vector_params(path: Path) -> dict[str, tuple[int, str]]:
    """The named vectors of the live shard under `path` before it is opened (none for a new index)."""
    try:
        current = _read_current(path)
    except IndexUnavailable:
        return {}
    return {} if current is None else _vector_params(_read_config(path / current))


def _vector_params(config: dict[str, Any]) -> dict[str, tuple[int, str]]:
    vectors = config.get("vectors", {})
    return {name: (int(v["size"]), str(v.get("distance", "Cosine"))) for name, v in vectors.items()}


def _same_vectors(stored: dict[str, Any], config: Any) -> bool:
    """Whether `config` names the same dense vectors, of the same sizes, as a stored shard."""
    wanted = {name: int(params.size) for name, params in (config.vectors or {}).items()}
    have = {name: int(v.get("size", -1)) for name, v in stored.get("vectors", {}).items()}
    return bool(have) and have == wanted
