"""SQL connector (issue 5): rows/s listed and cataloged from a 100,000-row PostgreSQL table.

"Cataloged" means what the connector does before any image is opened: read the
rows in keyset pages, convert every column to typed metadata, hash the row
into a version and build the AssetRecord (the encoder is excluded). Measured:
a full listing (no cursor column, with a cursor column, through a query), the
driver alone reading the same rows (the floor), and the incremental re-read a
second sync pays (nothing new; 1,000 new rows). The table lives in a private
database that is created and dropped here.

    python -m benchmarks.bench_sql [--full] [--rows N] [--repeats N]
"""

from __future__ import annotations

import argparse
import resource
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import sqlalchemy as sa

from benchmarks.common import Profile, Table, loadavg, median, report
from tests.integration.sql_dbs import TestDB, private_database, unreachable_reason

FRAMES_DDL = """
CREATE TABLE frames (
    id bigint PRIMARY KEY, path text NOT NULL, camera text, site text, split text,
    label text, score double precision, conf numeric(6, 4), night boolean,
    boxes jsonb, updated_at timestamptz NOT NULL
)
"""
# Server-side generation: loading 100k rows takes a second, not a minute of client inserts.
FRAMES_FILL = """
INSERT INTO frames
SELECT g, 'frames/' || g || '.jpg', 'cam-' || (g % 12), 'site-' || (g % 5),
       (ARRAY['train', 'val', 'test'])[1 + g % 3], (ARRAY['bike', 'car', 'person', 'dog'])[1 + g % 4],
       (g % 1000) / 1000.0, ((g * 7) % 10000) / 10000.0, g % 2 = 0,
       jsonb_build_object('n', g % 4, 'boxes', jsonb_build_array(jsonb_build_array(1, 2, 3, 4))),
       timestamptz '2024-01-01 00:00:00+00' + (g || ' seconds')::interval
FROM generate_series(CAST(:first AS bigint), CAST(:last AS bigint)) AS g
"""


def _connector(db: TestDB, **config: Any) -> Any:
    from connectors.registry import build

    base = {"url": db.url, "key": "id", "uri_column": "path", "root": "/data"}
    return build("bench", "sql", {**base, **config})


def _consume(listing_fn: Callable[[], Any]) -> tuple[float, int, float]:
    """(seconds, records, MiB the process peak grew by) of one listing read to its end."""
    peak0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    count = 0
    for _ in listing_fn().records:
        count += 1  # the pipeline would batch these; the listing must not hold them
    seconds = time.perf_counter() - t0
    peak1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return seconds, count, (peak1 - peak0) / 1024


def _driver_floor(db: TestDB, chunk: int) -> tuple[float, int, float]:
    """The same rows through SQLAlchemy + psycopg with a server-side cursor and nothing else."""

    class _Rows:
        def __init__(self) -> None:
            self.records = self._rows()

        def _rows(self) -> Any:
            engine = sa.create_engine(db.url)
            with engine.connect() as conn:
                result = conn.execution_options(stream_results=True, yield_per=chunk).exec_driver_sql(
                    "SELECT * FROM frames ORDER BY id"
                )
                yield from result
            engine.dispose()

    return _consume(_Rows)


def _full_listings(db: TestDB, *, rows: int, repeats: int) -> Table:
    table = Table(
        f"full listing of {rows:,} rows (list + metadata + version, no image opened)",
        ["mode", "chunk_size", "median s", "rows/s", "peak RSS growth MiB"],
    )
    cases: list[tuple[str, int, dict[str, Any]]] = [
        ("driver alone (server-side cursor, no conversion)", 2000, {}),
        ("table, no cursor column", 2000, {"table": "frames"}),
        ("table, no cursor column", 500, {"table": "frames"}),
        ("table, no cursor column", 10000, {"table": "frames"}),
        ("table, cursor=updated_at", 2000, {"table": "frames", "cursor": "updated_at"}),
        ("query (SELECT ... WHERE split <> 'x'), cursor", 2000,
         {"query": "SELECT * FROM frames WHERE split <> 'x'", "cursor": "updated_at"}),
    ]  # fmt: skip
    for mode, chunk, config in cases:
        runs = []
        for _ in range(repeats):
            if not config:
                runs.append(_driver_floor(db, chunk))
                continue
            conn = _connector(db, chunk_size=chunk, **config)
            conn.check()
            runs.append(_consume(partial(conn.list, cursor=None)))
        assert all(n == rows for _, n, _ in runs), f"{mode}: expected {rows} rows, got {runs}"
        seconds = median([s for s, _, _ in runs])
        table.add(mode, chunk, seconds, rows / seconds, max(m for _, _, m in runs))
    table.notes.append(
        "peak RSS growth is the process high-water mark rising during the run; ~0 after the "
        "first run means the listing streams (one page in memory at a time)"
    )
    return table


def _incremental(db: TestDB, *, rows: int, repeats: int) -> Table:
    table = Table(
        "incremental re-read from the saved cursor (a second sync)",
        ["case", "rows read", "median ms", "rows/s"],
    )
    conn = _connector(db, table="frames", cursor="updated_at")
    conn.check()
    last = None
    for record in conn.list(cursor=None).records:
        last = record.cursor
    runs = [_consume(partial(conn.list, cursor=last)) for _ in range(repeats)]
    table.add("nothing new", runs[0][1], median([s for s, _, _ in runs]) * 1000, None)
    with db.engine.begin() as c:
        c.execute(sa.text(FRAMES_FILL), {"first": rows + 1, "last": rows + 1000})
        c.exec_driver_sql("ANALYZE frames")
    runs = [_consume(partial(conn.list, cursor=last)) for _ in range(repeats)]
    seconds = median([s for s, _, _ in runs])
    table.add("1,000 new rows", runs[0][1], seconds * 1000, runs[0][1] / seconds)
    table.notes.append(
        "a keyset query (`updated_at >= :last AND (updated_at > :last OR id > :key)`) on the "
        "(updated_at, id) index: its cost follows the new rows, not the table"
    )
    return table


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_sql", description=__doc__)
    p.add_argument("--full", action="store_true", help="accepted for the suite; sizes are the same")
    p.add_argument("--rows", type=int, default=100_000)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args(argv)
    profile = Profile("full" if args.full else "quick")
    reason = unreachable_reason("postgresql")
    if reason is not None:
        raise SystemExit(f"bench_sql needs PostgreSQL: {reason}")
    started_load = loadavg()
    with private_database("postgresql") as db:
        with db.engine.begin() as c:
            c.exec_driver_sql(FRAMES_DDL)
            c.execute(sa.text(FRAMES_FILL), {"first": 1, "last": args.rows})
            c.exec_driver_sql("CREATE INDEX frames_cursor ON frames (updated_at, id)")
            c.exec_driver_sql("ANALYZE frames")
        tables = [
            _full_listings(db, rows=args.rows, repeats=args.repeats),
            _incremental(db, rows=args.rows, repeats=args.repeats),
        ]
    name = f"SQL connector (PostgreSQL, {args.rows:,} rows)"
    report(name, profile, tables, started_load=started_load)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
