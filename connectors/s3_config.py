"""How an s3 source is configured: the connection to a store and the bucket part; no boto3 needed.

The sql connector's `s3` setting is an S3Connection too, so this module is
kept free of boto3: a config validates (and a missing boto3 is reported by
name) wherever it is read.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from connectors.base import ConnectorConfig
from service.errors import AssetError

PRESIGN_MAX_S = 7 * 24 * 3600  # SigV4 refuses longer expiries
MANIFEST_SUFFIXES = (".jsonl", ".ndjson", ".csv")


class S3Connection(ConnectorConfig):
    """How to reach an S3-compatible store.

    Credentials: the standard AWS chain (environment, shared files, instance role)
    unless `access_key_id`/`secret_access_key` or `profile` is given; with
    `role_arn` those credentials assume the role through STS (at `endpoint_url`
    when set, as MinIO and Ceph serve it) and refresh it before it expires.
    `addressing_style="auto"` means path-style for a custom endpoint (what
    S3-compatible stores expect) and botocore's choice on AWS. `max_attempts`
    is how many times one call is tried when it fails transiently (unreachable,
    throttled, 5xx); `retry_mode="adaptive"` also slows the client down while
    the store throttles (botocore's client-side rate limiter).
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
