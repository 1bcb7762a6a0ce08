"""The s3 connector: every image under a bucket prefix on AWS S3 or any S3-compatible store.

    S3Connection   how to reach a store: endpoint, region, credentials, timeouts, retries
    S3Config       an `s3` source: an S3Connection plus bucket, prefix, globs, sidecars, manifest
    S3Client       one thread-safe boto3 client for an S3Connection: `get(bucket, key) -> Blob`,
                   `get_uri("s3://bucket/key")`, `presign(...)`; the sql connector opens s3:// URIs
                   with it
    S3Connector    the `s3` kind: `check`, `list` (no GETs but one for a manifest), `fetch`,
                   `presigned_url`

Every botocore error passes through `_s3_errors()`: what stops the whole source
(credentials, bucket, endpoint, region, a server gone or throttling past the
retries) becomes SourceError; one unreadable object becomes AssetError.

What an asset's metadata holds after `fetch` (later sources win on a clash):
user metadata (`x-amz-meta-*`, flat, names lower-cased), then the manifest row,
then the sidecar JSON; S3's own facts sit under `"s3"`: bucket, etag,
storage_class, content_type, version_id, and `tags` when `object_tags` is on.
"""

from __future__ import annotations

import contextlib
import csv
import fnmatch
import hashlib
import io
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import boto3
import botocore.session
from botocore.config import Config
from botocore.credentials import CredentialProvider, DeferredRefreshableCredentials
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    CredentialRetrievalError,
    HTTPClientError,
    IncompleteReadError,
    NoCredentialsError,
    PartialCredentialsError,
    ProfileNotFound,
)
from botocore.exceptions import ConnectionError as BotoConnectionError
from pydantic import Field, SecretStr, field_validator, model_validator

from connectors.base import AssetRecord, Blob, ConnectorConfig, Listing, register
from connectors.sidecar import (
    MAX_SIDECAR_BYTES,
    is_image_key,
    media_type,
    parse_sidecar,
    sidecar_keys,
)
from service.errors import AssetError, LoupeError, SourceError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client as BotoS3

MAX_OBJECT_BYTES = 1 << 30  # a GET reads the whole object into memory
MAX_SHARED_CLIENTS = 32
MAX_MANIFEST_BYTES = 256 << 20
PRESIGN_MAX_S = 7 * 24 * 3600  # SigV4 refuses longer expiries
MANIFEST_SUFFIXES = (".jsonl", ".ndjson", ".csv")

_CREDENTIAL_CODES = {"InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidClientTokenId"}
_CREDENTIAL_CODES |= {"ExpiredToken", "InvalidToken", "TokenRefreshRequired", "InvalidSecurity"}
_REGION_CODES = {"PermanentRedirect", "AuthorizationHeaderMalformed", "301"}
_BUSY_CODES = {"SlowDown", "ServiceUnavailable", "Throttling", "RequestLimitExceeded", "503"}
_GONE_CODES = {"NoSuchKey", "404", "NotFound", "NoSuchVersion"}
_DENIED_CODES = {"AccessDenied", "403", "AllAccessDisabled", "AccountProblem"}


class S3Connection(ConnectorConfig):
    """How to reach an S3-compatible store.

    Credentials: the standard AWS chain (environment, shared files, instance role)
    unless `access_key_id`/`secret_access_key` or `profile` is given; with
    `role_arn` those credentials assume the role through STS (at `endpoint_url`
    when set, as MinIO and Ceph serve it) and refresh it before it expires.
    `addressing_style="auto"` means path-style for a custom endpoint (what
    S3-compatible stores expect) and botocore's choice on AWS.
    """

    endpoint_url: str | None = None
    region: str | None = None
    addressing_style: Literal["auto", "path", "virtual"] = "auto"
    access_key_id: str | None = None
    secret_access_key: SecretStr | None = None
    session_token: SecretStr | None = None
    profile: str | None = None
    role_arn: str | None = None
    connect_timeout_s: float = Field(5.0, gt=0, le=300)
    read_timeout_s: float = Field(30.0, gt=0, le=3600)
    max_attempts: int = Field(5, ge=1, le=20)
    retry_mode: Literal["standard", "adaptive"] = "standard"

    @field_validator("endpoint_url")
    @classmethod
    def _http_url(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https:// (e.g. http://127.0.0.1:9000)")
        return v.rstrip("/") if v else None

    @model_validator(mode="after")
    def _one_credential_source(self) -> S3Connection:
        if (self.access_key_id is None) != (self.secret_access_key is None):
            raise ValueError("give both access_key_id and secret_access_key, or neither")
        if self.session_token is not None and self.access_key_id is None:
            raise ValueError("session_token needs access_key_id and secret_access_key")
        if self.profile is not None and self.access_key_id is not None:
            raise ValueError("give either a profile or access keys, not both")
        return self

    @property
    def endpoint_label(self) -> str:
        """The endpoint as error messages name it."""
        return self.endpoint_url or f"AWS S3 ({self.region or 'default region'})"


class S3Config(S3Connection):
    """An s3 source: image objects under `prefix` in `bucket`.

    Globs (fnmatch, `*` crosses `/`) match the key relative to the prefix or the
    full key. Sidecars follow connectors.sidecar's naming; `manifest` is the key
    of a JSONL (one object per line) or CSV file in the bucket whose `key`
    field/column names the object (full key or relative to the prefix); its
    other fields become metadata. `max_concurrency` bounds the sync's download
    pool and this client's connection pool. `allow_presigned` lets the API and
    exports hand out presigned GET URLs, living at most `presign_expiry_s`.
    """

    bucket: str = Field(min_length=3, max_length=255)
    prefix: str = ""
    include: list[str] = ["*"]
    exclude: list[str] = []
    object_tags: bool = False
    manifest: str | None = None
    sidecars: bool = True
    max_concurrency: int = Field(8, ge=1, le=64)
    allow_presigned: bool = False
    presign_expiry_s: int = Field(PRESIGN_MAX_S, ge=1, le=PRESIGN_MAX_S)

    @field_validator("bucket")
    @classmethod
    def _bare_bucket(cls, v: str) -> str:
        if "/" in v or v.startswith("s3:"):
            raise ValueError("a bare bucket name (put the path in prefix, e.g. prefix=images/)")
        return v

    @field_validator("prefix")
    @classmethod
    def _no_leading_slash(cls, v: str) -> str:
        return v.lstrip("/")

    @field_validator("manifest")
    @classmethod
    def _manifest_format(cls, v: str | None) -> str | None:
        if v is not None and not v.lower().endswith(MANIFEST_SUFFIXES):
            raise ValueError(f"the manifest key must end with one of {', '.join(MANIFEST_SUFFIXES)}")
        return v


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """(bucket, key) of `s3://bucket/key`; the key is taken verbatim, as the AWS CLI writes it."""
    bucket, sep, key = uri.removeprefix("s3://").partition("/")
    if not uri.startswith("s3://") or not bucket or not sep or not key:
        raise AssetError(f"{uri!r} is not an s3://bucket/key URI")
    return bucket, key


# -- errors ---------------------------------------------------------------


def _one_line(exc: BaseException) -> str:
    """botocore's message on one line: details end up in JSON bodies and CLI output."""
    return " ".join(str(exc).split())


@contextlib.contextmanager
def _s3_errors(*, endpoint: str, bucket: str | None, key: str | None = None) -> Iterator[None]:
    """Translate botocore errors: source-wide ones to SourceError, one object's to AssetError.

    `key` says the call was about one object; without it every failure is source-wide.
    """
    where = f"bucket {bucket!r} at {endpoint}" if bucket else endpoint
    try:
        yield
    except ClientError as exc:
        raise _client_error(exc, where=where, bucket=bucket, key=key) from exc
    except (NoCredentialsError, PartialCredentialsError, ProfileNotFound) as exc:
        raise SourceError(
            f"no usable credentials for {where} ({_one_line(exc)}); set access_key_id and "
            "secret_access_key, a profile, or the standard AWS environment variables"
        ) from exc
    except CredentialRetrievalError as exc:
        raise SourceError(
            f"no usable credentials for {where} ({_one_line(exc)}); check role_arn and that the "
            "source's credentials may assume it"
        ) from exc
    except (BotoConnectionError, HTTPClientError, IncompleteReadError) as exc:
        raise SourceError(
            f"cannot reach the S3 endpoint {endpoint} ({_one_line(exc)}); check endpoint_url, "
            "the network, and that the server is running"
        ) from exc
    except BotoCoreError as exc:
        raise SourceError(f"S3 client error for {where}: {_one_line(exc)}") from exc


def _client_error(exc: ClientError, *, where: str, bucket: str | None, key: str | None) -> LoupeError:
    error = exc.response.get("Error", {})
    code = str(error.get("Code", ""))
    message = " ".join(str(error.get("Message") or exc).split())
    source_wide = _source_wide(code, message, where=where, whole_bucket=key is None)
    if source_wide is not None:
        return source_wide
    uri = f"s3://{bucket}/{key}"
    if code in _GONE_CODES:
        return AssetError(f"{uri} no longer exists (deleted since the listing)")
    if code in _DENIED_CODES:
        return AssetError(f"access to {uri} denied ({code}: {message})")
    if code == "InvalidObjectState":
        return AssetError(f"{uri} is archived ({message}); restore it to catalog it")
    return AssetError(f"cannot read {uri}: {code}: {message}")


def _source_wide(code: str, message: str, *, where: str, whole_bucket: bool) -> SourceError | None:
    """The SourceError an S3 error code means, or None when it concerns one object only."""
    if code in _CREDENTIAL_CODES:
        return SourceError(
            f"{where} refused the credentials ({code}: {message}); check access_key_id and "
            "secret_access_key (or the profile, role or session token) of this source"
        )
    if code == "NoSuchBucket" or (whole_bucket and code in _GONE_CODES):
        return SourceError(f"{where}: the bucket does not exist; check bucket, endpoint_url, region")
    if code in _REGION_CODES:
        return SourceError(f"{where} answers from another region ({message}); set region")
    if code in _BUSY_CODES:
        return SourceError(
            f"{where} kept throttling or was unavailable ({code}) past the retries; try again "
            "later, or lower max_concurrency or raise max_attempts"
        )
    if whole_bucket and code in _DENIED_CODES:
        return SourceError(
            f"{where} denied access ({code}: {message}); the credentials need "
            "s3:ListBucket on the bucket and s3:GetObject on its objects"
        )
    return SourceError(f"{where} failed: {code}: {message}") if whole_bucket else None


# -- the client ------------------------------------------------------------


class _AssumedRole(CredentialProvider):
    """Credentials of `role_arn`, assumed through STS and refreshed before they expire."""

    METHOD = "loupe-assume-role"
    CANONICAL_NAME = "LoupeAssumeRole"

    def __init__(self, *, base: boto3.Session, connection: S3Connection, region: str) -> None:
        super().__init__()
        self._sts = base.client(
            "sts",
            endpoint_url=connection.endpoint_url,
            region_name=region,
            config=_boto_config(connection, pool_size=2),
        )
        self._role_arn = connection.role_arn or ""

    def _refresh(self) -> dict[str, str]:
        try:
            response = self._sts.assume_role(RoleArn=self._role_arn, RoleSessionName="loupe")
        except (ClientError, BotoCoreError) as exc:
            # else an STS AccessDenied would read as the bucket denying access
            raise CredentialRetrievalError(
                provider=self.METHOD, error_msg=f"assuming role {self._role_arn} failed: {exc}"
            ) from exc
        creds = response["Credentials"]
        return {
            "access_key": creds["AccessKeyId"],
            "secret_key": creds["SecretAccessKey"],
            "token": creds["SessionToken"],
            "expiry_time": creds["Expiration"].isoformat(),
        }

    def load(self) -> DeferredRefreshableCredentials:
        return DeferredRefreshableCredentials(refresh_using=self._refresh, method=self.METHOD)


def _boto_config(connection: S3Connection, *, pool_size: int, attempts: int | None = None) -> Config:
    style = connection.addressing_style
    if style == "auto" and connection.endpoint_url:
        style = "path"  # bucket.127.0.0.1 or bucket.localhost do not resolve
    return Config(
        signature_version="s3v4",
        s3={"addressing_style": style},
        retries={
            "mode": connection.retry_mode,
            "max_attempts": attempts or connection.max_attempts,
        },
        connect_timeout=connection.connect_timeout_s,
        read_timeout=connection.read_timeout_s,
        max_pool_connections=pool_size,
        user_agent_extra="loupe",
    )


def _session(connection: S3Connection) -> tuple[boto3.Session, str | None]:
    """The boto3 session for the connection's credentials, and the region to use."""
    secret = connection.secret_access_key
    token = connection.session_token
    base = boto3.Session(
        profile_name=connection.profile,
        aws_access_key_id=connection.access_key_id,
        aws_secret_access_key=secret.get_secret_value() if secret else None,
        aws_session_token=token.get_secret_value() if token else None,
        region_name=connection.region,
    )
    # S3-compatible stores sign with any region; botocore needs one to sign at all.
    region = base.region_name or ("us-east-1" if connection.endpoint_url else None)
    if not connection.role_arn:
        return base, region
    core = botocore.session.get_session()
    provider = _AssumedRole(base=base, connection=connection, region=region or "us-east-1")
    core.get_component("credential_provider").insert_before("env", provider)
    return boto3.Session(botocore_session=core, region_name=region), region


@dataclass(frozen=True, slots=True)
class _Object:
    """One listed object, as little as the records need."""

    key: str
    etag: str
    size: int
    modified: datetime | None
    storage_class: str | None


class S3Client:
    """A thread-safe client for one S3Connection; share one instance across threads.

    Reusable beyond the s3 connector: `S3Client.from_config(conn).get_uri("s3://b/k")`
    returns a Blob whose metadata holds the object's user metadata (flat) and
    `"s3"` facts; errors are SourceError (stop) or AssetError (this object).
    """

    def __init__(self, connection: S3Connection, *, pool_size: int = 10) -> None:
        self.connection = connection
        self.endpoint = connection.endpoint_label
        with _s3_errors(endpoint=self.endpoint, bucket=None):
            self._session, self._region = _session(connection)
            self._client = self._new_client(pool_size=pool_size)
        self._lock = threading.Lock()  # boto3 sessions are not thread-safe; clients are

    @classmethod
    def from_config(cls, config: S3Connection, *, pool_size: int = 10) -> S3Client:
        """A client for `config` (an S3Connection or S3Config); makes no network call.

        Clients are shared per connection settings: building one costs ~0.1 s
        (botocore loads its service model) and the API builds a connector per request.
        """
        key = _cache_key(config, pool_size=pool_size)
        with _CLIENTS_LOCK:
            client = _CLIENTS.get(key)
            if client is None:
                client = _CLIENTS[key] = cls(config, pool_size=pool_size)
                if len(_CLIENTS) > MAX_SHARED_CLIENTS:
                    _CLIENTS.popitem(last=False)
            _CLIENTS.move_to_end(key)
        return client

    @property
    def boto(self) -> BotoS3:
        """The underlying boto3 client (thread-safe), e.g. to register event hooks."""
        return self._client

    def _new_client(self, *, pool_size: int, attempts: int | None = None) -> BotoS3:
        config = _boto_config(self.connection, pool_size=pool_size, attempts=attempts)
        return self._session.client(
            "s3", endpoint_url=self.connection.endpoint_url, region_name=self._region, config=config
        )

    def _errors(self, bucket: str, key: str | None = None) -> contextlib.AbstractContextManager[None]:
        return _s3_errors(endpoint=self.endpoint, bucket=bucket, key=key)

    def probe(self, bucket: str, *, prefix: str = "") -> None:
        """One cheap list call with few retries, so a bad source fails at once."""
        with self._lock:
            client = self._new_client(pool_size=1, attempts=min(2, self.connection.max_attempts))
        with self._errors(bucket):
            client.list_objects_v2(Bucket=bucket, Prefix=prefix, MaxKeys=1)

    def objects(self, bucket: str, *, prefix: str = "") -> Iterator[_Object]:
        """Every object under `prefix`, page by page (list_objects_v2; no GETs)."""
        pages = self._client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        with self._errors(bucket):
            for page in pages:
                for item in page.get("Contents", []):
                    yield _Object(
                        key=item["Key"],
                        etag=item.get("ETag", "").strip('"'),
                        size=item.get("Size", 0),
                        modified=item.get("LastModified"),
                        storage_class=item.get("StorageClass"),
                    )

    def get(self, bucket: str, key: str, *, max_bytes: int = MAX_OBJECT_BYTES) -> Blob:
        """The object's bytes, user metadata (flat) and S3 facts (under "s3").

        Raises:
            AssetError: the object is missing, denied, or larger than `max_bytes`.
            SourceError: credentials, bucket or endpoint failed, or the server went away.
        """
        with self._errors(bucket, key):
            response, data = self._download(bucket, key, max_bytes=max_bytes)
        content_type = response.get("ContentType")
        facts = {"bucket": bucket, "etag": response.get("ETag", "").strip('"')}
        facts |= {"content_type": content_type, "version_id": response.get("VersionId")}
        metadata: dict[str, Any] = dict(response.get("Metadata", {}))
        metadata["s3"] = {k: v for k, v in facts.items() if v}
        image_type = content_type if content_type and content_type.startswith("image/") else None
        return Blob(data=data, metadata=metadata, media_type=image_type or media_type(key))

    def get_uri(self, uri: str, *, max_bytes: int = MAX_OBJECT_BYTES) -> Blob:
        """`get` for an `s3://bucket/key` URI."""
        bucket, key = parse_s3_uri(uri)
        return self.get(bucket, key, max_bytes=max_bytes)

    def _download(self, bucket: str, key: str, *, max_bytes: int) -> tuple[Any, bytes]:
        # botocore retries a failed request, not a body cut off midway: retry that here.
        attempts = self.connection.max_attempts
        for attempt in range(1, attempts + 1):
            response = self._client.get_object(Bucket=bucket, Key=key)
            size = response.get("ContentLength", 0)
            if size > max_bytes:
                response["Body"].close()
                raise AssetError(f"s3://{bucket}/{key} has {size} bytes, over the {max_bytes} read")
            try:
                return response, response["Body"].read()
            except (HTTPClientError, IncompleteReadError):
                if attempt == attempts:
                    raise
                time.sleep(min(5.0, 0.2 * 2 ** (attempt - 1)))
        raise AssertionError("unreachable")

    def tags(self, bucket: str, key: str) -> dict[str, str]:
        """The object's tags (one extra call)."""
        with self._errors(bucket, key):
            tag_set = self._client.get_object_tagging(Bucket=bucket, Key=key)["TagSet"]
        return {t["Key"]: t["Value"] for t in tag_set}

    def presign(self, bucket: str, key: str, *, expires_s: int) -> str:
        """A GET URL valid for `expires_s` seconds (cut to SigV4's 7 days); no network call."""
        expires = max(1, min(int(expires_s), PRESIGN_MAX_S))
        with self._errors(bucket, key):
            return self._client.generate_presigned_url(
                "get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=expires
            )


_CLIENTS: OrderedDict[str, S3Client] = OrderedDict()  # least recently used first
_CLIENTS_LOCK = threading.Lock()


def _cache_key(config: S3Connection, *, pool_size: int) -> str:
    """The connection settings (secrets included: a rotated key needs a new client), as text."""
    values = {name: getattr(config, name) for name in S3Connection.model_fields}
    plain = {k: v.get_secret_value() if isinstance(v, SecretStr) else v for k, v in values.items()}
    return json.dumps(plain, sort_keys=True) + f"|pool={pool_size}"


# -- the connector ----------------------------------------------------------


def _row_digest(row: Mapping[str, Any]) -> str:
    return hashlib.sha1(json.dumps(row, sort_keys=True, default=str).encode()).hexdigest()[:12]


def _parse_manifest(raw: bytes, *, is_csv: bool) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, row) of a JSONL or CSV manifest; ValueError names what is wrong."""
    text = raw.decode("utf-8-sig")
    if is_csv:
        reader = csv.DictReader(io.StringIO(text))
        for row in reader:
            # a blank cell means no value, not an empty string
            yield reader.line_num, {k: v for k, v in row.items() if k and v not in (None, "")}
        return
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"line {number} is not valid JSON ({exc.msg})") from None
        if not isinstance(row, dict):
            raise ValueError(f"line {number} is not a JSON object")
        yield number, row


@register
class S3Connector:
    """Lists image objects under a bucket prefix; fetches them with a shared S3Client.

    A record's version is `etag:size`, plus `+<sidecar etag>` and `+m<row digest>`
    when a sidecar or manifest row exists, so a changed sidecar or row re-embeds.
    The listing is read whole before records are yielded because sidecars may be
    listed after their image and stores differ in listing order.
    """

    kind: ClassVar[str] = "s3"
    config_model: ClassVar[type[ConnectorConfig]] = S3Config

    def __init__(self, name: str, config: S3Config) -> None:
        self.name = name
        self.config = config
        self.client = S3Client.from_config(config, pool_size=config.max_concurrency + 2)

    def check(self) -> None:
        self.client.probe(self.config.bucket, prefix=self.config.prefix)

    def list(self, *, cursor: str | None = None, full: bool = False) -> Listing:
        # S3 has no change feed we can page through, so every listing is full and complete.
        return Listing(records=self._records(), complete=True)

    def fetch(self, record: AssetRecord) -> Blob:
        bucket = self.config.bucket
        blob = self.client.get(bucket, record.key)
        metadata: dict[str, Any] = {**blob.metadata, **record.metadata}
        sidecar_key = record.hints.get("sidecar")
        if sidecar_key:
            metadata.update(self._sidecar(sidecar_key))
        facts = {**record.metadata.get("s3", {}), **blob.metadata.get("s3", {})}
        if self.config.object_tags:
            facts["tags"] = self.client.tags(bucket, record.key)
        metadata["s3"] = facts
        return Blob(data=blob.data, metadata=metadata, media_type=blob.media_type)

    def presigned_url(self, record: AssetRecord, *, expires_s: int) -> str | None:
        """A GET URL for the asset when the source allows presigned URLs, else None.

        The URL lives `expires_s` seconds, cut to the source's `presign_expiry_s`.
        """
        if not self.config.allow_presigned:
            return None
        expires = min(expires_s, self.config.presign_expiry_s)
        return self.client.presign(self.config.bucket, record.key, expires_s=expires)

    # -- listing ---------------------------------------------------------

    def _wanted(self, key: str) -> bool:
        relative = key[len(self.config.prefix) :].lstrip("/")

        def matches(patterns: list[str]) -> bool:
            return any(fnmatch.fnmatchcase(relative, p) or fnmatch.fnmatchcase(key, p) for p in patterns)

        return matches(self.config.include) and not matches(self.config.exclude)

    def _records(self) -> Iterator[AssetRecord]:
        manifest = self._manifest() if self.config.manifest else {}
        images: list[_Object] = []
        json_etags: dict[str, str] = {}
        for obj in self.client.objects(self.config.bucket, prefix=self.config.prefix):
            if is_image_key(obj.key):
                if self._wanted(obj.key):
                    images.append(obj)
            elif self.config.sidecars and obj.key.endswith(".json"):
                json_etags[obj.key] = obj.etag
        for obj in images:
            yield self._record(obj, json_etags=json_etags, manifest=manifest)

    def _record(
        self, obj: _Object, *, json_etags: Mapping[str, str], manifest: Mapping[str, dict[str, Any]]
    ) -> AssetRecord:
        version = f"{obj.etag}:{obj.size}"
        facts = {"bucket": self.config.bucket, "etag": obj.etag, "storage_class": obj.storage_class}
        metadata: dict[str, Any] = {}
        row = manifest.get(obj.key)
        if row is None:
            row = manifest.get(obj.key[len(self.config.prefix) :].lstrip("/"))
        if row is not None:
            metadata.update(row)
            version += f"+m{_row_digest(row)}"
        metadata["s3"] = {k: v for k, v in facts.items() if v}
        hints: dict[str, Any] = {}
        sidecar = next((k for k in sidecar_keys(obj.key) if k in json_etags), None)
        if sidecar is not None:
            version += f"+{json_etags[sidecar]}"
            hints["sidecar"] = sidecar
        return AssetRecord(
            key=obj.key,
            uri=f"s3://{self.config.bucket}/{obj.key}",
            version=version,
            size_bytes=obj.size,
            modified_at=obj.modified,
            media_type=media_type(obj.key),
            metadata=metadata,
            hints=hints,
        )

    def _manifest(self) -> dict[str, dict[str, Any]]:
        """Manifest rows by key (one GET); a missing or malformed manifest stops the sync."""
        key = self.config.manifest or ""
        where = f"manifest s3://{self.config.bucket}/{key}"
        try:
            raw = self.client.get(self.config.bucket, key, max_bytes=MAX_MANIFEST_BYTES).data
            rows: dict[str, dict[str, Any]] = {}
            for number, row in _parse_manifest(raw, is_csv=key.lower().endswith(".csv")):
                row_key = row.pop("key", None)
                if not isinstance(row_key, str) or not row_key:
                    raise ValueError(f"line {number} has no string 'key' field")
                rows[row_key] = row
        except AssetError as exc:
            raise SourceError(f"{where}: {exc.detail}; fix the source's manifest setting") from None
        except (ValueError, csv.Error) as exc:
            raise SourceError(f"{where} cannot be read: {exc}") from None
        return rows

    def _sidecar(self, key: str) -> dict[str, Any]:
        """The sidecar's metadata; an unreadable one becomes `_sidecar_error`, as in `local`."""
        try:
            blob = self.client.get(self.config.bucket, key, max_bytes=MAX_SIDECAR_BYTES)
            return parse_sidecar(blob.data)
        except AssetError as exc:
            return {"_sidecar_error": exc.detail}
        except ValueError as exc:
            return {"_sidecar_error": str(exc)}
