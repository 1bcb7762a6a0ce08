"""The sql connector against real databases: PostgreSQL and MariaDB on this machine, SQLite files.

Each run gets a private PostgreSQL and MariaDB database (dropped at the end) and
each test its own tables; s3:// rows are read from a real moto server on
127.0.0.1, http:// rows from a real HTTP server. Behaviour every database must
share runs on all three (`db`).
"""

from __future__ import annotations

import io
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from PIL import Image
from sqlalchemy.dialects import mysql
from sqlalchemy.engine import make_url

from connectors.base import AssetRecord
from connectors.registry import build
from connectors.sql import SQLConfig, SQLConnector
from connectors.sql_engine import dispose_engines
from connectors.sql_guard import read_only_query
from connectors.sql_values import decode_cursor, encode_cursor
from service.errors import AssetError, InvalidConfig, LoupeError, SourceError, SourceUnavailable
from tests.integration.s3_servers import S3Server, start_moto, stop
from tests.integration.sql_dbs import TestDB, private_database, unreachable_reason

pytestmark = pytest.mark.timeout(120)
BACKENDS = ["postgresql", "mariadb", "sqlite"]


def image_bytes(fmt: str = "PNG", color: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (8, 6), color).save(out, fmt)
    return out.getvalue()


# -- databases and servers -----------------------------------------------------


def _server_db(kind: str) -> Iterator[TestDB]:
    reason = unreachable_reason(kind)
    if reason is not None:
        pytest.skip(reason)
    with private_database(kind) as db:
        yield db


@pytest.fixture(scope="session")
def pg_db() -> Iterator[TestDB]:
    yield from _server_db("postgresql")


@pytest.fixture(scope="session")
def maria_db() -> Iterator[TestDB]:
    yield from _server_db("mariadb")


@pytest.fixture
def sqlite_db(tmp_path: Path) -> Iterator[TestDB]:
    with private_database("sqlite", tmp_path=tmp_path) as db:
        yield db


@pytest.fixture(params=BACKENDS)
def db(request: pytest.FixtureRequest) -> TestDB:
    """Each database in turn, for behaviour all of them must share."""
    name = {"postgresql": "pg_db", "mariadb": "maria_db", "sqlite": "sqlite_db"}[request.param]
    found: TestDB = request.getfixturevalue(name)
    return found


@pytest.fixture(scope="session")
def moto() -> Iterator[S3Server]:
    server = start_moto()
    yield server
    stop(server)


@pytest.fixture
def http_root(tmp_path: Path) -> Iterator[tuple[Path, int]]:
    """A real HTTP server on 127.0.0.1 serving a directory; `/go?to=URL` redirects."""
    root = tmp_path / "www"
    root.mkdir()

    class Handler(SimpleHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
            if self.path.startswith("/go?to="):
                self.send_response(302)
                self.send_header("Location", self.path.removeprefix("/go?to="))
                self.end_headers()
                return
            super().do_GET()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(Handler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, server.server_address[1]
    server.shutdown()
    server.server_close()


def new_table(db: TestDB, *columns: sa.Column[Any], rows: list[dict[str, Any]]) -> sa.Table:
    """A fresh table with a unique name in `db`, filled with `rows`."""
    table = sa.Table(f"t_{uuid.uuid4().hex[:10]}", sa.MetaData(), *columns)
    table.create(db.engine)
    if rows:
        with db.engine.begin() as conn:
            conn.execute(table.insert(), rows)
    return table


def source(db: TestDB, **config: Any) -> SQLConnector:
    """A connector built the way the sync pipeline builds one."""
    conn = build("photos", "sql", {"url": db.url, **config})
    assert isinstance(conn, SQLConnector)
    return conn


def listed(conn: SQLConnector, **kw: Any) -> list[AssetRecord]:
    return list(conn.list(**kw).records)


# -- rows pointing at files ----------------------------------------------------------


def test_rows_with_file_paths_are_listed_and_read_under_root(db: TestDB, tmp_path: Path) -> None:
    root = tmp_path / "images"
    (root / "sub").mkdir(parents=True)
    outside = tmp_path / "secret.png"
    outside.write_bytes(image_bytes())
    Image.new("RGB", (8, 6), (1, 2, 3)).save(root / "a.png")
    Image.new("RGB", (8, 6), (4, 5, 6)).save(root / "sub" / "b.jpg", "JPEG")
    Image.new("RGB", (8, 6), (7, 8, 9)).save(root / "c d.png")
    (root / "link.png").symlink_to(outside)
    paths = {
        "a": "a.png",  # relative to root
        "b": (root / "sub" / "b.jpg").as_uri(),  # file:// URI
        "c": str(root / "c d.png"),  # absolute path under root
        "d": "missing.png",
        "e": "../secret.png",
        "f": "link.png",  # a link inside the root to a file outside it
        "g": "file:///etc/hostname",
    }
    table = new_table(
        db,
        sa.Column("id", sa.String(20), primary_key=True),
        sa.Column("path", sa.String(500)),
        sa.Column("camera", sa.String(50)),
        rows=[{"id": k, "path": p, "camera": f"cam-{k}"} for k, p in paths.items()],
    )
    conn = source(db, table=table.name, key="id", uri_column="path", root=str(root))
    conn.check()
    listing = conn.list()
    records = list(listing.records)
    assert listing.complete
    assert [r.key for r in records] == sorted(paths)
    by_key = {r.key: r for r in records}
    assert by_key["a"].metadata == {"camera": "cam-a"}
    assert by_key["a"].uri == (root / "a.png").as_uri()
    assert by_key["b"].media_type == "image/jpeg"
    assert conn.fetch(by_key["a"]).data == (root / "a.png").read_bytes()
    assert conn.fetch(by_key["b"]).data == (root / "sub" / "b.jpg").read_bytes()
    assert conn.fetch(by_key["c"]).data == (root / "c d.png").read_bytes()
    with pytest.raises(AssetError, match="does not exist"):
        conn.fetch(by_key["d"])
    for escaping in "efg":
        with pytest.raises(AssetError, match="outside"):
            conn.fetch(by_key[escaping])


def test_file_paths_without_root_are_refused(sqlite_db: TestDB, tmp_path: Path) -> None:
    (tmp_path / "a.png").write_bytes(image_bytes())
    table = new_table(
        sqlite_db,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("path", sa.String(500)),
        rows=[{"id": 1, "path": str(tmp_path / "a.png")}],
    )
    conn = source(sqlite_db, table=table.name, key="id", uri_column="path")
    (record,) = listed(conn)
    with pytest.raises(AssetError, match="no `root`"):
        conn.fetch(record)


# -- rows carrying their bytes ----------------------------------------------------------


def test_rows_with_bytes_are_fetched_by_key_concurrently(db: TestDB) -> None:
    images = {i: image_bytes("PNG" if i % 2 else "JPEG", (i * 9, 0, 0)) for i in range(1, 25)}
    table = new_table(
        db,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("img", sa.LargeBinary),
        sa.Column("label", sa.String(20)),
        rows=[{"id": i, "img": b, "label": "odd" if i % 2 else "even"} for i, b in images.items()]
        + [{"id": 99, "img": None, "label": "none"}],
    )
    conn = source(db, table=table.name, key="id", bytes_column="img", chunk_size=7)
    conn.check()
    records = listed(conn)
    assert [r.key for r in records] == [str(i) for i in [*images, 99]]
    first = records[0]
    assert first.uri == "sql://photos/1"
    assert first.size_bytes == len(images[1])
    assert first.metadata == {"label": "odd"}
    with ThreadPoolExecutor(8) as pool:
        blobs = list(pool.map(conn.fetch, records[:-1] * 3))
    assert [b.data for b in blobs] == list(images.values()) * 3
    assert blobs[0].media_type == "image/png" and blobs[1].media_type == "image/jpeg"
    # A record rebuilt from the index (the content endpoint) has no hints, only the key text.
    rebuilt = AssetRecord(key="2", uri=records[1].uri, version="")
    assert conn.fetch(rebuilt).data == images[2]
    with pytest.raises(AssetError, match="NULL"):
        conn.fetch(records[-1])
    with db.engine.begin() as c:
        c.execute(table.delete().where(table.c.id == 3))
    with pytest.raises(AssetError, match="no longer"):
        conn.fetch(records[2])


# -- rows pointing at S3 ------------------------------------------------------------------


def test_rows_with_s3_uris_are_read_from_the_store(db: TestDB, moto: S3Server) -> None:
    bucket = f"sql-{uuid.uuid4().hex[:8]}"
    s3 = moto.client()
    s3.create_bucket(Bucket=bucket)
    png, jpg = image_bytes("PNG"), image_bytes("JPEG")
    s3.put_object(Bucket=bucket, Key="frames/a.png", Body=png, Metadata={"rig": "north"})
    s3.put_object(Bucket=bucket, Key="frames/b c.jpg", Body=jpg)
    uris = ["s3://{b}/frames/a.png", "s3://{b}/frames/b c.jpg", "s3://{b}/gone.png", "s3://{b}"]
    table = new_table(
        db,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("uri", sa.String(300)),
        rows=[{"id": i, "uri": u.format(b=bucket)} for i, u in enumerate(uris)],
    )
    s3_settings = {
        "endpoint_url": moto.endpoint_url,
        "region": "us-east-1",
        "access_key_id": moto.access_key_id,
        "secret_access_key": moto.secret_access_key,
        "addressing_style": "path",
    }
    conn = source(db, table=table.name, key="id", uri_column="uri", s3=s3_settings)
    a, b, gone, bad = listed(conn)
    blob = conn.fetch(a)
    assert blob.data == png and blob.media_type == "image/png"
    assert blob.metadata["rig"] == "north"
    assert conn.fetch(b).data == jpg
    with pytest.raises(AssetError, match="no longer exists"):
        conn.fetch(gone)
    with pytest.raises(AssetError, match="not an s3://bucket/key"):
        conn.fetch(bad)
    assert conn.config.public()["s3"]["secret_access_key"] == "**********"
    assert conn.config.stored()["s3"]["secret_access_key"] == moto.secret_access_key


# -- rows pointing at http(s) ---------------------------------------------------------------


def test_http_uris_only_for_allowed_hosts(sqlite_db: TestDB, http_root: tuple[Path, int]) -> None:
    root, port = http_root
    png = image_bytes()
    (root / "a.png").write_bytes(png)
    uris = [
        f"http://127.0.0.1:{port}/a.png",
        f"http://localhost:{port}/a.png",  # the same server, by a host not on the list
        f"http://127.0.0.1:{port}/go?to=http://localhost:{port}/a.png",
        f"http://127.0.0.1:{port}/go?to=/a.png",
        f"http://127.0.0.1:{port}/nothing.png",
    ]
    table = new_table(
        sqlite_db,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("uri", sa.String(300)),
        rows=[{"id": i, "uri": u} for i, u in enumerate(uris)],
    )
    conn = source(sqlite_db, table=table.name, key="id", uri_column="uri", allow_http_hosts=["127.0.0.1"])
    allowed, other_host, redirect_out, redirect_in, missing = listed(conn)
    assert conn.fetch(allowed).data == png
    assert conn.fetch(redirect_in).data == png
    with pytest.raises(AssetError, match="'localhost' is not in the source's `allow_http_hosts`"):
        conn.fetch(other_host)
    with pytest.raises(AssetError, match="'localhost' is not in"):
        conn.fetch(redirect_out)
    with pytest.raises(AssetError, match="HTTP 404"):
        conn.fetch(missing)
    closed = source(sqlite_db, table=table.name, key="id", uri_column="uri")
    with pytest.raises(AssetError, match="'127.0.0.1' is not in"):
        closed.fetch(allowed)


# -- metadata types ---------------------------------------------------------------------------


def test_metadata_keeps_types_and_omits_nulls(db: TestDB) -> None:
    taken = datetime(2024, 5, 6, 7, 8, 9, 250000, tzinfo=UTC)
    info = {"boxes": [{"label": "bike", "score": 0.9}], "night": True, "note": "ünïcode"}
    table = new_table(
        db,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("path", sa.String(200)),
        sa.Column("price", sa.Numeric(10, 2)),
        sa.Column("ratio", sa.Float),
        sa.Column("flag", sa.Boolean),
        sa.Column("info", sa.JSON),
        sa.Column("taken", sa.DateTime(timezone=True).with_variant(mysql.DATETIME(fsp=6), "mysql")),
        sa.Column("day", sa.Date),
        sa.Column("note", sa.Unicode(100)),
        sa.Column("thumb", sa.LargeBinary),
        sa.Column("empty", sa.String(10)),
        rows=[
            {
                "id": 1, "path": "a.png", "price": Decimal("12.50"), "ratio": 0.25, "flag": True,
                "info": info, "taken": taken, "day": date(2024, 5, 6),
                "note": "naïve café 東京 🚲", "thumb": b"\x00\x01", "empty": None,
            },
            {"id": 2, "path": "b.png", "price": None, "ratio": None, "flag": False, "info": None,
             "taken": None, "day": None, "note": None, "thumb": None, "empty": None},
        ],
    )  # fmt: skip
    conn = source(db, table=table.name, key="id", uri_column="path")
    first, second = listed(conn)
    assert first.metadata == {
        "price": 12.5,
        "ratio": 0.25,
        "flag": True,
        "info": info,
        "taken": "2024-05-06T07:08:09.250000Z",
        "day": "2024-05-06",
        "note": "naïve café 東京 🚲",
    }
    assert second.metadata == {"flag": False}
    assert isinstance(first.metadata["flag"], bool)
    chosen = source(db, table=table.name, key="id", uri_column="path", columns=["note", "ratio"])
    assert listed(chosen)[0].metadata == {"note": "naïve café 東京 🚲", "ratio": 0.25}


def test_postgres_odd_types(pg_db: TestDB) -> None:
    name = f"t_{uuid.uuid4().hex[:10]}"
    with pg_db.engine.begin() as c:
        c.exec_driver_sql(
            f"CREATE TABLE {name} (id uuid PRIMARY KEY, path text, doc jsonb, at timestamptz,"
            " tags text[], span interval, x numeric, local_at timestamp)"
        )
        c.exec_driver_sql(
            f"INSERT INTO {name} VALUES ('8a5c0a5e-46a7-4b7e-9a59-2f2f9a3c1d10', 'a.png',"
            """ '{"a": {"b": [1, null]}}', '2024-05-06 09:08:09+02', '{x,y}', '90 minutes',"""
            " 'NaN', '2024-05-06 07:08:09')"
        )
    conn = source(pg_db, table=name, key="id", uri_column="path")
    (record,) = listed(conn)
    assert record.key == "8a5c0a5e-46a7-4b7e-9a59-2f2f9a3c1d10"
    assert record.metadata == {
        "doc": {"a": {"b": [1, None]}},
        "at": "2024-05-06T07:08:09Z",
        "tags": ["x", "y"],
        "span": 5400.0,
        "local_at": "2024-05-06T07:08:09Z",
    }


# -- cursors ------------------------------------------------------------------------------------


def _frames(db: TestDB, count: int) -> sa.Table:
    base = datetime(2024, 1, 1, 12, 0, 0)
    return new_table(
        db,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("path", sa.String(200)),
        sa.Column("label", sa.String(20)),
        sa.Column("updated_at", sa.DateTime),
        # Three rows share each timestamp, so pages and the kill fall inside ties.
        rows=[
            {"id": i, "path": f"{i}.png", "label": "cat", "updated_at": base + timedelta(minutes=i // 3)}
            for i in range(count)
        ],
    )


def test_cursor_resume_after_a_kill_reads_the_rest_and_only_the_rest(db: TestDB) -> None:
    table = _frames(db, 23)
    config = {"table": table.name, "key": "id", "uri_column": "path", "cursor": "updated_at"}
    first = source(db, **config, chunk_size=4)
    listing = first.list(cursor=None)
    assert listing.complete
    records = list(listing.records)
    assert [r.key for r in records] == [str(i) for i in range(23)]
    assert records[0].modified_at == datetime(2024, 1, 1, 12, 0, tzinfo=UTC)
    assert records[0].metadata["updated_at"] == "2024-01-01T12:00:00Z"

    # The sync dies after committing 10 records (mid-tie: 9, 10, 11 share a timestamp).
    saved = records[9].cursor
    assert saved is not None
    restarted = source(db, **config, chunk_size=4)
    resumed = restarted.list(cursor=saved)
    assert not resumed.complete
    assert [r.key for r in resumed.records] == [str(i) for i in range(10, 23)]

    # New rows and an updated one come after the last cursor; nothing else is read.
    later = datetime(2024, 1, 2)
    with db.engine.begin() as c:
        c.execute(table.insert(), [{"id": 100, "path": "n.png", "updated_at": later}])
        c.execute(table.update().where(table.c.id == 0).values(label="dog", updated_at=later))
    again = listed(restarted, cursor=records[-1].cursor)
    assert [r.key for r in again] == ["0", "100"]
    assert again[0].version != records[0].version
    assert again[0].metadata["label"] == "dog"

    everything = restarted.list(cursor=records[-1].cursor, full=True)
    assert everything.complete
    assert len(list(everything.records)) == 24


def test_incremental_read_binds_the_cursor_and_uses_the_index(pg_db: TestDB) -> None:
    table = _frames(pg_db, 3000)
    with pg_db.engine.begin() as c:
        c.exec_driver_sql(f"CREATE INDEX ON {table.name} (updated_at, id)")
        c.exec_driver_sql(f"ANALYZE {table.name}")
    conn = source(pg_db, table=table.name, key="id", uri_column="path", cursor="updated_at")
    records = listed(conn)
    _table_scans(pg_db, table.name)  # the full listing's own scans, out of the way
    with pg_db.engine.begin() as c:
        c.exec_driver_sql(f"SELECT pg_stat_reset_single_table_counters('{table.name}'::regclass)")
    tail = listed(conn, cursor=records[-4].cursor)
    assert [r.key for r in tail] == ["2997", "2998", "2999"]
    idx_scans, seq_scans = _table_scans(pg_db, table.name)
    assert seq_scans == 0 and idx_scans >= 1, "an incremental read walks the index"


def _table_scans(db: TestDB, table: str) -> tuple[int, int]:
    """(index scans, sequential scans) of `table`, once the connector's backends reported them."""
    dispose_engines()  # a backend flushes its statistics when it exits, a moment later
    deadline = time.monotonic() + 5
    while True:
        with db.engine.connect() as c:
            c.exec_driver_sql("SELECT pg_stat_clear_snapshot()")
            idx, seq = c.exec_driver_sql(
                "SELECT idx_scan, seq_scan FROM pg_stat_user_tables WHERE relname = %s", (table,)
            ).one()
        if idx + seq > 0 or time.monotonic() > deadline:
            return idx, seq
        time.sleep(0.05)


def test_a_growing_id_can_be_both_key_and_cursor(db: TestDB) -> None:
    table = _frames(db, 9)
    conn = source(db, table=table.name, key="id", uri_column="path", cursor="id", chunk_size=4)
    records = listed(conn)
    assert [r.key for r in records] == [str(i) for i in range(9)]
    assert [r.key for r in listed(conn, cursor=records[4].cursor)] == ["5", "6", "7", "8"]


def test_a_row_deleted_between_syncs_is_absent_from_a_full_listing(db: TestDB) -> None:
    table = _frames(db, 6)
    conn = source(db, table=table.name, key="id", uri_column="path", chunk_size=4)
    before = {r.key: r for r in listed(conn)}
    with db.engine.begin() as c:
        c.execute(table.delete().where(table.c.id == 2))
        c.execute(table.update().where(table.c.id == 4).values(label="dog"))
    listing = conn.list(cursor=None)
    after = {r.key: r for r in listing.records}
    assert listing.complete
    assert sorted(after) == ["0", "1", "3", "4", "5"]
    unchanged = ["0", "1", "3", "5"]
    assert [after[k].version for k in unchanged] == [before[k].version for k in unchanged]
    assert after["4"].version != before["4"].version
    assert all(r.cursor is None for r in after.values())  # no cursor column: always full


def test_cursor_encoding_round_trips_typed_values() -> None:
    values = [
        42,
        2.5,
        Decimal("10.25"),
        "2024-01-01",
        datetime(2024, 5, 6, 7, 8, 9, tzinfo=timezone(timedelta(hours=2))),
        datetime(2024, 5, 6, 7, 8, 9),
        date(2024, 5, 6),
        uuid.UUID("8a5c0a5e-46a7-4b7e-9a59-2f2f9a3c1d10"),
        True,
    ]
    for value in values:
        encoded = encode_cursor(column="c", value=value, key="k1")
        assert decode_cursor(encoded, column="c") == (value, "k1")
        assert type(decode_cursor(encoded, column="c")[0]) is type(value)  # type: ignore[index]
    assert decode_cursor(encode_cursor(column="c", value=1, key=1), column="other") is None
    with pytest.raises(SourceError, match="full sync"):
        decode_cursor("not json", column="c")


def test_a_cursor_saved_for_another_column_means_a_full_listing(sqlite_db: TestDB) -> None:
    table = _frames(sqlite_db, 5)
    conn = source(sqlite_db, table=table.name, key="id", uri_column="path", cursor="updated_at")
    stale = encode_cursor(column="id", value=3, key=3)
    listing = conn.list(cursor=stale)
    assert listing.complete
    assert len(list(listing.records)) == 5


# -- queries -------------------------------------------------------------------------------------


def test_a_select_query_lists_and_resumes_by_cursor(db: TestDB) -> None:
    table = _frames(db, 12)
    cams = new_table(
        db,
        sa.Column("frame_id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("camera", sa.String(20)),
        rows=[{"frame_id": i, "camera": "north" if i % 2 else "south"} for i in range(12)],
    )
    query = f"""
        SELECT f.id, f.path, f.updated_at, c.camera, '10:30' AS slot
        FROM {table.name} f JOIN {cams.name} c ON c.frame_id = f.id
        WHERE c.camera LIKE '%th' AND f.label <> 'x;y' -- every row matches
        ;"""
    conn = source(db, query=query, key="id", uri_column="path", cursor="updated_at", chunk_size=5)
    conn.check()
    records = listed(conn)
    assert [r.key for r in records] == [str(i) for i in range(12)]
    assert records[1].metadata["camera"] == "north"
    assert records[1].metadata["slot"] == "10:30"
    assert [r.key for r in listed(conn, cursor=records[6].cursor)] == [str(i) for i in range(7, 12)]


URLS = {
    "postgresql": "postgresql+psycopg://u:p@127.0.0.1/db",
    "mysql": "mysql+pymysql://u:p@127.0.0.1/db",
    "sqlite": "sqlite:///x.db",
    "other": "oracle://u:p@127.0.0.1/db",  # no driver needed to validate: every reading applies
}
EVERYWHERE = ("postgresql", "mysql", "sqlite", "other")


@pytest.mark.parametrize(
    ("backends", "query"),
    [
        (EVERYWHERE, "DELETE FROM t"),
        (EVERYWHERE, "SELECT 1; DROP TABLE t"),
        (EVERYWHERE, "SELECT 1 AS id; -- ok\n DELETE FROM t"),
        (EVERYWHERE, "WITH gone AS (DELETE FROM t RETURNING *) SELECT * FROM gone"),
        (EVERYWHERE, "SELECT * INTO t2 FROM t"),
        (EVERYWHERE, "SELECT * FROM t FOR UPDATE"),
        (EVERYWHERE, "SELECT * FROM t FOR SHARE"),
        (EVERYWHERE, "SELECT * FROM t LOCK IN SHARE MODE"),
        (EVERYWHERE, "SELECT 1) AS src; DROP TABLE t; --"),
        (EVERYWHERE, "SELECT setval('s', 1)"),
        (EVERYWHERE, "SELECT 'unterminated"),
        (EVERYWHERE, "UPDATE t SET a = 1"),
        (EVERYWHERE, ""),
        (EVERYWHERE, "SELECT /*! 1; DROP TABLE t */ 1"),
        # Quoting tricks aimed at one database's reading of quotes and comments:
        (("mysql", "other"), "SELECT 'a\\'; DROP TABLE t; --'"),  # a backslash escape
        (("mysql", "other"), "SELECT 1 # '\n; DROP TABLE t; SELECT '"),  # a `#` comment
        (("mysql", "other"), "SELECT 1 AS id --1) AS src; DROP TABLE t; SELECT * FROM (SELECT 1"),
        (("postgresql", "other"), "SELECT $$ ; $$; DROP TABLE t"),
        (("mysql", "sqlite", "other"), "SELECT 1 /* /* */ ; DROP TABLE t; */"),  # nests in PG only
        (("sqlite", "other"), "SELECT [a'b] FROM t; DROP TABLE t --'"),  # [identifier]
    ],
)
def test_a_query_that_is_not_one_read_only_select_is_refused(backends: tuple[str, ...], query: str) -> None:
    for backend in backends:
        config = {"url": URLS[backend], "query": query, "key": "id", "uri_column": "path"}
        with pytest.raises(InvalidConfig, match="query"):
            build("photos", "sql", config)


@pytest.mark.parametrize(
    ("backend", "query"),
    [
        (None, "select * from t;"),
        (None, "WITH x AS (SELECT 1 AS id) SELECT * FROM x"),
        (None, "SELECT 'a;b' AS s, \"update\" FROM t -- DELETE"),
        (None, "SELECT id::text, replace(path, 'a', 'b') FROM t /* INSERT */"),
        (None, "(SELECT 1 AS id)"),
        (None, "SELECT 'C:\\dir' AS p, x - -1 AS y FROM t"),
        ("postgresql", "SELECT doc['k'] AS k, $$it's$$ AS s, a$b FROM t -- a comment"),
        ("mysql", "SELECT `order`, 'it''s' AS s FROM t # a comment"),
        ("sqlite", "SELECT [odd name;] FROM t"),
    ],
)
def test_read_only_selects_are_accepted(backend: str | None, query: str) -> None:
    assert read_only_query(query, backend=backend) == query.rstrip().rstrip(";")


def _writing_function(db: TestDB, log: str) -> str:
    """A function that inserts a row: it passes the query guard, only the transaction stops it."""
    with db.engine.begin() as c:
        c.exec_driver_sql(f"CREATE TABLE {log} (n integer)")
        if db.kind == "postgresql":
            c.exec_driver_sql(
                f"CREATE FUNCTION {log}_bump() RETURNS integer LANGUAGE sql AS "
                f"$$ INSERT INTO {log} VALUES (1) RETURNING n $$"
            )
        else:
            c.exec_driver_sql(
                f"CREATE FUNCTION {log}_bump() RETURNS integer MODIFIES SQL DATA "
                f"BEGIN INSERT INTO {log} VALUES (1); RETURN 1; END"
            )
    return f"{log}_bump"


@pytest.mark.parametrize("kind", ["postgresql", "mariadb"])
def test_queries_run_in_a_read_only_transaction(kind: str, request: pytest.FixtureRequest) -> None:
    db: TestDB = request.getfixturevalue("pg_db" if kind == "postgresql" else "maria_db")
    log = f"log_{uuid.uuid4().hex[:8]}"
    bump = _writing_function(db, log)
    conn = source(db, query=f"SELECT {bump}() AS id, 'a.png' AS path", key="id", uri_column="path")
    with pytest.raises(LoupeError, match="(?i)read.only"):
        conn.check()
        listed(conn)
    with db.engine.connect() as c:
        assert c.exec_driver_sql(f"SELECT count(*) FROM {log}").scalar() == 0


def test_sqlite_connections_are_query_only(sqlite_db: TestDB) -> None:
    table = _frames(sqlite_db, 1)
    conn = source(sqlite_db, table=table.name, key="id", uri_column="path")
    with conn._read_only("testing") as c, pytest.raises(sa.exc.OperationalError, match="readonly"):
        c.exec_driver_sql(f"DELETE FROM {table.name}")


@pytest.mark.parametrize("kind", ["postgresql", "mariadb"])
def test_a_slow_query_hits_the_statement_timeout(kind: str, request: pytest.FixtureRequest) -> None:
    db: TestDB = request.getfixturevalue("pg_db" if kind == "postgresql" else "maria_db")
    sleep = "pg_sleep(5)" if kind == "postgresql" else "SLEEP(5)"
    query = f"SELECT 1 AS id, 'a.png' AS path, {sleep} AS slept"
    conn = source(db, query=query, key="id", uri_column="path", statement_timeout_s=0.5)
    started = time.monotonic()
    # MariaDB runs a FROM-less derived table even for the LIMIT 0 probe: check() may time out.
    with pytest.raises(SourceError, match="ran past statement_timeout_s"):
        conn.check()
        listed(conn)
    assert time.monotonic() - started < 3


# -- failures the user must understand ---------------------------------------------------------------


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize(
    "url",
    [
        "postgresql+psycopg://loupe:hunter2-secret@127.0.0.1:{port}/db",
        "mysql+pymysql://loupe:hunter2-secret@127.0.0.1:{port}/db",
    ],
)
def test_an_unreachable_database_is_a_quick_source_error(url: str) -> None:
    conn = build("photos", "sql", {"url": url.format(port=_closed_port()), "table": "t",
                                    "key": "id", "uri_column": "path"})  # fmt: skip
    started = time.monotonic()
    with pytest.raises(SourceUnavailable) as err:  # transient: retried, then 503 from a request
        conn.check()
    assert time.monotonic() - started < 5
    assert "hunter2-secret" not in err.value.detail
    assert "127.0.0.1" in err.value.detail


class DroppingProxy:
    """A real TCP proxy on 127.0.0.1 in front of a database: it closes the first `drop`
    connections it accepts before a byte is exchanged (a server restarting, a load balancer
    without a backend yet), then pipes the rest through. It counts every connection.
    """

    def __init__(self, target: tuple[str, int], *, drop: int) -> None:
        self.target, self.drop, self.accepted = target, drop, 0
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return  # closed
            self.accepted += 1
            if self.accepted <= self.drop:
                client.close()
                continue
            upstream = socket.create_connection(self.target)
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while chunk := src.recv(65536):
                dst.sendall(chunk)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                s.close()

    def url(self, db: TestDB, **changes: Any) -> str:
        # sslmode=disable: libpq would otherwise try again without SSL on its own, twice per try.
        url = make_url(db.url).set(host="127.0.0.1", port=self.port, query={"sslmode": "disable"})
        return url.set(**changes).render_as_string(hide_password=False)

    def close(self) -> None:
        self.sock.close()


def _pg_target(db: TestDB) -> tuple[str, int]:
    url = make_url(db.url)
    return url.host or "127.0.0.1", url.port or 5432


def test_a_connection_refused_for_a_moment_is_retried_then_succeeds(pg_db: TestDB) -> None:
    table = _frames(pg_db, 3)
    proxy = DroppingProxy(_pg_target(pg_db), drop=2)
    try:
        config = {"url": proxy.url(pg_db), "table": table.name, "key": "id", "uri_column": "path"}
        conn = build("photos", "sql", {**config, "max_attempts": 3})
        assert [r.key for r in listed(conn)] == ["0", "1", "2"]
        assert proxy.accepted == 3  # two dropped, retried, the third answered

        dispose_engines()  # no pooled connection: the check must connect
        proxy.drop, proxy.accepted = 1, 0
        conn.check()  # a check tries twice at most: one drop passes
        assert proxy.accepted == 2
    finally:
        proxy.close()
        dispose_engines()


def test_a_connection_that_keeps_failing_gives_up_after_max_attempts(pg_db: TestDB) -> None:
    proxy = DroppingProxy(_pg_target(pg_db), drop=100)
    try:
        config = {"url": proxy.url(pg_db), "table": "t", "key": "id", "uri_column": "path", "max_attempts": 4}
        with pytest.raises(SourceUnavailable) as err:
            listed(build("photos", "sql", config))
        assert err.value.status_code == 503 and "127.0.0.1" in err.value.detail
        assert proxy.accepted == 4
        proxy.accepted = 0
        with pytest.raises(SourceUnavailable):
            build("photos", "sql", config).check()
        assert proxy.accepted == 2  # a check gives up sooner
    finally:
        proxy.close()
        dispose_engines()


def test_a_database_that_answers_no_is_not_retried(pg_db: TestDB) -> None:
    table = _frames(pg_db, 1)
    proxy = DroppingProxy(_pg_target(pg_db), drop=0)
    try:
        missing_db = proxy.url(pg_db, database="loupe_no_such_database")
        config = {
            "url": missing_db,
            "table": table.name,
            "key": "id",
            "uri_column": "path",
            "max_attempts": 5,
        }
        with pytest.raises(SourceError, match="does not exist") as err:
            build("photos", "sql", config).check()
        assert not err.value.transient and proxy.accepted == 1
        syntax = {"url": proxy.url(pg_db), "query": "SELECT id, path FROM nowhere_at_all", "key": "id"}
        with pytest.raises(InvalidConfig, match="nowhere_at_all"):
            build("photos", "sql", {**syntax, "uri_column": "path", "max_attempts": 5}).check()
        assert proxy.accepted == 2  # one more connection for the query, and no retry
    finally:
        proxy.close()
        dispose_engines()


def test_a_wrong_password_is_a_source_error_without_the_password(maria_db: TestDB) -> None:
    assert maria_db.password is not None
    url = maria_db.url.replace(maria_db.password, "wrong-Pa55word")
    conn = build("photos", "sql", {"url": url, "table": "t", "key": "id", "uri_column": "p"})
    with pytest.raises(SourceError, match="Access denied") as err:
        conn.check()
    assert "wrong-Pa55word" not in err.value.detail
    assert not err.value.transient  # a refused login is an answer: never retried


def test_a_missing_sqlite_file_is_invalid_config_that_names_it(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'nope.db'}"
    conn = build("photos", "sql", {"url": url, "table": "t", "key": "id", "uri_column": "path"})
    missing = tmp_path / "nope.db"
    with pytest.raises(InvalidConfig, match=f"url: SQLite database file {missing} does not exist"):
        conn.check()
    assert not (tmp_path / "nope.db").exists()


@pytest.mark.parametrize("field", ["key", "uri_column", "cursor", "columns"])
def test_a_missing_column_is_named_with_the_existing_ones(db: TestDB, field: str) -> None:
    table = _frames(db, 2)
    config: dict[str, Any] = {"table": table.name, "key": "id", "uri_column": "path"}
    config[field] = ["label", "nope"] if field == "columns" else "nope"
    with pytest.raises(InvalidConfig) as err:
        source(db, **config).check()
    assert "'nope'" in err.value.detail
    assert "id, path, label, updated_at" in err.value.detail


def test_a_missing_column_in_a_query_and_a_missing_table(db: TestDB) -> None:
    table = _frames(db, 2)
    query = f"SELECT id AS frame, path FROM {table.name}"
    with pytest.raises(InvalidConfig, match="'id'.*the query; its columns are: frame, path"):
        source(db, query=query, key="id", uri_column="path").check()
    with pytest.raises(InvalidConfig, match=f"table 'no_such' not found; tables here: .*{table.name}"):
        source(db, table="no_such", key="id", uri_column="path").check()
    if db.kind != "sqlite":  # SQLite renames the second one `id:1`: nothing to refuse
        with pytest.raises(InvalidConfig, match="(?i)the same name|duplicate column"):
            dupes = f"SELECT id, id, path FROM {table.name}"
            source(db, query=dupes, key="id", uri_column="path").check()


def test_a_query_the_database_rejects_is_a_clear_error_without_the_password(pg_db: TestDB) -> None:
    conn = source(pg_db, query="SELECT no_such_column FROM pg_class", key="id", uri_column="p")
    with pytest.raises(InvalidConfig, match="no_such_column") as err:
        conn.check()
    assert pg_db.password and pg_db.password not in err.value.detail
    assert "[SQL:" not in err.value.detail


def test_the_password_is_never_shown(db: TestDB) -> None:
    conn = source(db, table="t", key="id", uri_column="path")
    public = conn.config.public()
    shown = repr(conn.config) + str(public) + repr(conn.engine) + conn.mask.where
    assert public["url"] == "**********"
    assert conn.config.stored()["url"] == db.url
    if db.password:
        assert db.password not in shown


def test_any_error_text_is_masked_in_both_spellings_of_the_password() -> None:
    # Drivers seldom echo the password, but a DSN in an error would: the mask is the guarantee.
    url = "postgresql+psycopg://loupe:p%40ss%2Fw0rd@127.0.0.1:1/db"
    conn = build("photos", "sql", {"url": url, "table": "t", "key": "id", "uri_column": "p"})
    assert isinstance(conn, SQLConnector)
    masked = conn.mask(f"failed: {url} and password=p@ss/w0rd")
    assert "p@ss/w0rd" not in masked and "p%40ss%2Fw0rd" not in masked
    assert conn.mask.where == "postgresql+psycopg://loupe:***@127.0.0.1:1/db"


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"table": "t", "query": "SELECT 1", "uri_column": "p"}, "exactly one of `table` and `query`"),
        ({"uri_column": "p"}, "exactly one of `table` and `query`"),
        ({"table": "t"}, "exactly one of `uri_column` and `bytes_column`"),
        ({"table": "t", "uri_column": "p", "bytes_column": "b"}, "exactly one of `uri_column`"),
        ({"table": "t", "uri_column": "p", "chunk_size": 0}, "chunk_size"),
        ({"table": "t", "uri_column": "p", "colour": "red"}, "colour"),
    ],
)
def test_config_is_validated_up_front(config: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidConfig, match=message):
        build("photos", "sql", {"url": "sqlite:///x.db", "key": "id", **config})


def test_a_bad_url_is_refused_without_echoing_it() -> None:
    with pytest.raises(InvalidConfig) as err:
        build("photos", "sql", {"url": "not a url:hunter2@", "table": "t", "key": "id", "uri_column": "p"})
    assert "SQLAlchemy URL" in err.value.detail and "hunter2" not in err.value.detail
    with pytest.raises(InvalidConfig, match="no SQLAlchemy driver"):
        build("photos", "sql", {"url": "nosuchdb://u:p@h/d", "table": "t", "key": "id", "uri_column": "p"})


def test_design_doc_column_names_are_accepted_as_aliases(sqlite_db: TestDB) -> None:
    table = _frames(sqlite_db, 2)
    raw = {"table": table.name, "key_column": "id", "uri_column": "path", "cursor_column": "updated_at"}
    conn = source(sqlite_db, **raw)
    assert conn.config.key == "id" and conn.config.cursor == "updated_at"
    assert isinstance(conn.config, SQLConfig)
    assert [r.key for r in listed(conn)] == ["0", "1"]


def test_source_config_round_trips_through_the_state_store_shape(db: TestDB) -> None:
    table = _frames(db, 3)
    conn = source(db, table=table.name, key="id", uri_column="path", cursor="updated_at")
    again = build("photos", "sql", conn.config.stored())
    assert isinstance(again, SQLConnector)
    assert [r.key for r in listed(again)] == ["0", "1", "2"]


# -- through the catalog: what the acceptance check does, at small scale ----------------


@pytest.mark.slow  # the catalog fixture loads the index and encoder stack
def test_a_postgres_table_syncs_into_the_catalog_incrementally(
    pg_db: TestDB, tmp_path: Path, fake_catalog: Any
) -> None:
    root = tmp_path / "frames"
    root.mkdir()
    base = datetime(2024, 3, 1, tzinfo=UTC)

    def row(i: int) -> dict[str, Any]:
        Image.new("RGB", (16, 12), (i * 4 % 256, 90, 200 - i)).save(root / f"{i}.png")
        return {
            "id": i, "path": f"{i}.png", "camera": "north" if i % 2 else "south",
            "site": f"site-{i % 3}", "split": "train", "label": ["bike", "car", "person"][i % 3],
            "score": Decimal(i) / 40, "updated_at": base + timedelta(hours=i),
        }  # fmt: skip

    table = new_table(
        pg_db,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("path", sa.Text),
        sa.Column("camera", sa.Text),
        sa.Column("site", sa.Text),
        sa.Column("split", sa.Text),
        sa.Column("label", sa.Text),
        sa.Column("score", sa.Numeric(6, 3)),
        sa.Column("updated_at", sa.DateTime(timezone=True)),
        rows=[row(i) for i in range(40)],
    )
    config = {"url": pg_db.url, "table": table.name, "key": "id", "uri_column": "path",
              "cursor": "updated_at", "root": str(root), "chunk_size": 16}  # fmt: skip
    fake_catalog.add_source("frames", "sql", config)
    shown = fake_catalog.public_source(fake_catalog.state.get_source("frames"))
    assert shown["config"]["url"] == "**********"

    first = fake_catalog.sync("frames")
    assert (first.state, first.counts["added"], first.counts["failed"]) == ("succeeded", 40, 0)
    assert fake_catalog.count({"camera": "north"}) == 20
    assert fake_catalog.count({"label": {"in": ["bike", "car"]}}) == 27
    assert fake_catalog.count({"score": {"gte": 0.5}}) == 20

    with pg_db.engine.begin() as c:
        c.execute(table.insert(), [row(i) for i in range(40, 45)])
    second = fake_catalog.sync("frames")
    assert (second.counts["seen"], second.counts["added"]) == (5, 5)

    with pg_db.engine.begin() as c:
        c.execute(table.delete().where(table.c.id == 7))
    full = fake_catalog.sync("frames", full=True)
    assert (full.counts["seen"], full.counts["missing"], full.counts["added"]) == (44, 1, 0)
    (asset,), _ = fake_catalog.list_assets(filter={"key": "3"}, limit=5, cursor=None)
    data, media = fake_catalog.content(asset["id"])
    assert data == (root / "3.png").read_bytes() and media == "image/png"
