"""One thread-safe boto3 client per S3Connection: credentials, timeouts, and every call retried by one policy.

`S3Client.from_config(conn).get_uri("s3://bucket/key")` returns a Blob whose
metadata holds the object's user metadata (flat) and `"s3"` facts; the s3
connector lists and reads with it, connectors.uris opens s3:// URIs with it.
botocore's own retries are off: each call is retried by service.retry when
connectors.s3_errors marks its failure transient, `max_attempts` tries in all.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

import boto3
import botocore.session
from botocore.config import Config
from botocore.credentials import CredentialProvider, DeferredRefreshableCredentials
from botocore.exceptions import BotoCoreError, ClientError, CredentialRetrievalError
from pydantic import SecretStr

from connectors.base import Blob
from connectors.s3_config import PRESIGN_MAX_S, S3Connection, parse_s3_uri
from connectors.s3_errors import s3_errors
from connectors.sidecar import media_type
from service.errors import AssetError
from service.retry import RetryPolicy

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client as BotoS3

MAX_OBJECT_BYTES = 1 << 30  # a GET reads the whole object into memory
MAX_SHARED_CLIENTS = 32
PROBE_ATTEMPTS = 2  # a source being added should fail at once, not after the full backoff
T = TypeVar("T")


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


def _boto_config(connection: S3Connection, *, pool_size: int) -> Config:
    style = connection.addressing_style
    if style == "auto" and connection.endpoint_url:
        style = "path"  # bucket.127.0.0.1 or bucket.localhost do not resolve
    return Config(
        signature_version="s3v4",
        s3={"addressing_style": style},
        # One try per botocore call: service.retry decides what is retried, once, for every
        # boundary (nested retries would multiply). "adaptive" still rate-limits the client.
        retries={"mode": connection.retry_mode, "total_max_attempts": 1},
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
class S3Object:
    """One listed object, as little as the records need."""

    key: str
    etag: str
    size: int
    modified: datetime | None
    storage_class: str | None


class S3Client:
    """A thread-safe client for one S3Connection; share one instance across threads.

    Errors are SourceUnavailable (unreachable or busy, after the retries),
    SourceError (the source is wrong) or AssetError (this object).
    """

    def __init__(self, connection: S3Connection, *, pool_size: int = 10) -> None:
        self.connection = connection
        self.endpoint = connection.endpoint_label
        self.retry = RetryPolicy(attempts=connection.max_attempts)
        with s3_errors(endpoint=self.endpoint, bucket=None):
            session, region = _session(connection)
            config = _boto_config(connection, pool_size=pool_size)
            self._client: BotoS3 = session.client(
                "s3", endpoint_url=connection.endpoint_url, region_name=region, config=config
            )

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

    def _call(
        self, what: str, fn: Callable[[], T], *, bucket: str | None, key: str | None = None, attempts: int = 0
    ) -> T:
        """`fn()` with botocore's errors mapped, retried while they are transient."""

        def once() -> T:
            with s3_errors(endpoint=self.endpoint, bucket=bucket, key=key):
                return fn()

        policy = self.retry if not attempts else RetryPolicy(attempts=attempts)
        return policy.call(once, what=f"S3 {what} at {self.endpoint}")

    def probe(self, bucket: str, *, prefix: str = "") -> None:
        """One cheap list call with few retries, so a bad source fails at once."""
        attempts = min(PROBE_ATTEMPTS, self.connection.max_attempts)
        list_one = partial(self._client.list_objects_v2, Bucket=bucket, Prefix=prefix, MaxKeys=1)
        self._call("list", list_one, bucket=bucket, attempts=attempts)

    def objects(self, bucket: str, *, prefix: str = "") -> Iterator[S3Object]:
        """Every object under `prefix`, page by page (list_objects_v2; no GETs).

        Pages are requested one by one so a retried page starts where the last one ended.
        """
        token: str | None = None
        while True:
            args: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix}
            if token:
                args["ContinuationToken"] = token
            page = self._call("list", partial(self._client.list_objects_v2, **args), bucket=bucket)
            for item in page.get("Contents", []):
                yield S3Object(
                    key=item["Key"],
                    etag=item.get("ETag", "").strip('"'),
                    size=item.get("Size", 0),
                    modified=item.get("LastModified"),
                    storage_class=item.get("StorageClass"),
                )
            token = page.get("NextContinuationToken")
            if not page.get("IsTruncated") or not token:
                return

    def get(self, bucket: str, key: str, *, max_bytes: int = MAX_OBJECT_BYTES) -> Blob:
        """The object's bytes, user metadata (flat) and S3 facts (under "s3").

        Raises:
            AssetError: the object is missing, denied, or larger than `max_bytes`.
            SourceUnavailable: the store could not be reached or stayed busy past the retries.
            SourceError: credentials, bucket or endpoint are wrong.
        """
        # The request and the body's read are one try: a body cut off midway is retried too.
        response, data = self._call(
            "GET", lambda: self._download(bucket, key, max_bytes=max_bytes), bucket=bucket, key=key
        )
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
        response = self._client.get_object(Bucket=bucket, Key=key)
        size = response.get("ContentLength", 0)
        if size > max_bytes:
            response["Body"].close()
            raise AssetError(f"s3://{bucket}/{key} has {size} bytes, over the {max_bytes} read")
        return response, response["Body"].read()

    def tags(self, bucket: str, key: str) -> dict[str, str]:
        """The object's tags (one extra call)."""
        tagging = self._call(
            "GetObjectTagging",
            lambda: self._client.get_object_tagging(Bucket=bucket, Key=key),
            bucket=bucket,
            key=key,
        )
        return {t["Key"]: t["Value"] for t in tagging["TagSet"]}

    def presign(self, bucket: str, key: str, *, expires_s: int) -> str:
        """A GET URL valid for `expires_s` seconds (cut to SigV4's 7 days); no network call."""
        expires = max(1, min(int(expires_s), PRESIGN_MAX_S))
        with s3_errors(endpoint=self.endpoint, bucket=bucket, key=key):
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
