"""botocore's errors as Loupe's, in one place: what stops the source, what is one object's, what passes.

    SourceUnavailable  (transient) the endpoint cannot be reached, timed out, cut a
                       body short, throttled (SlowDown, 429) or failed (5xx):
                       service.retry tries the call again
    SourceError        (terminal) credentials refused, no such bucket, wrong region,
                       the bucket denied
    AssetError         (terminal) one object is gone, denied or archived

Botocore's own retries are off (S3Connection.max_attempts feeds the one policy
instead), so every failure passes through here before anything retries it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

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

from service.errors import AssetError, LoupeError, SourceError, SourceUnavailable

CREDENTIAL_CODES = {"InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidClientTokenId"}
CREDENTIAL_CODES |= {"ExpiredToken", "InvalidToken", "TokenRefreshRequired", "InvalidSecurity"}
REGION_CODES = {"PermanentRedirect", "AuthorizationHeaderMalformed", "301"}
# What AWS and S3-compatible stores answer when busy or briefly failing: worth another try.
BUSY_CODES = {"SlowDown", "ServiceUnavailable", "Throttling", "ThrottlingException", "RequestLimitExceeded"}
BUSY_CODES |= {"TooManyRequestsException", "RequestThrottled", "BandwidthLimitExceeded", "InternalError"}
BUSY_CODES |= {"RequestTimeout", "RequestTimeoutException", "429", "500", "502", "503", "504"}
GONE_CODES = {"NoSuchKey", "404", "NotFound", "NoSuchVersion"}
DENIED_CODES = {"AccessDenied", "403", "AllAccessDisabled", "AccountProblem"}


def _one_line(exc: BaseException) -> str:
    """botocore's message on one line: details end up in JSON bodies and CLI output."""
    return " ".join(str(exc).split())


@contextlib.contextmanager
def s3_errors(*, endpoint: str, bucket: str | None, key: str | None = None) -> Iterator[None]:
    """Translate botocore errors: source-wide ones to SourceError, one object's to AssetError.

    `key` says the call was about one object; without it every failure is source-wide.
    A store that cannot be reached or is busy is SourceUnavailable, which retries.
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
        raise SourceUnavailable(
            f"cannot reach the S3 endpoint {endpoint} ({_one_line(exc)}); check endpoint_url, "
            "the network, and that the server is running"
        ) from exc
    except BotoCoreError as exc:
        raise SourceError(f"S3 client error for {where}: {_one_line(exc)}") from exc


def _client_error(exc: ClientError, *, where: str, bucket: str | None, key: str | None) -> LoupeError:
    error = exc.response.get("Error", {})
    code = str(error.get("Code", ""))
    message = " ".join(str(error.get("Message") or exc).split())
    status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
    if code in BUSY_CODES or status == 429 or status >= 500:
        return SourceUnavailable(
            f"{where} kept throttling or was unavailable ({code or status}: {message}); try again "
            "later, or lower max_concurrency or raise max_attempts"
        )
    source_wide = _source_wide(code, message, where=where, whole_bucket=key is None)
    if source_wide is not None:
        return source_wide
    uri = f"s3://{bucket}/{key}"
    if code in GONE_CODES:
        return AssetError(f"{uri} no longer exists (deleted since the listing)")
    if code in DENIED_CODES:
        return AssetError(f"access to {uri} denied ({code}: {message})")
    if code == "InvalidObjectState":
        return AssetError(f"{uri} is archived ({message}); restore it to catalog it")
    return AssetError(f"cannot read {uri}: {code}: {message}")


def _source_wide(code: str, message: str, *, where: str, whole_bucket: bool) -> SourceError | None:
    """The SourceError an S3 error code means, or None when it concerns one object only."""
    if code in CREDENTIAL_CODES:
        return SourceError(
            f"{where} refused the credentials ({code}: {message}); check access_key_id and "
            "secret_access_key (or the profile, role or session token) of this source"
        )
    if code == "NoSuchBucket" or (whole_bucket and code in GONE_CODES):
        return SourceError(f"{where}: the bucket does not exist; check bucket, endpoint_url, region")
    if code in REGION_CODES:
        return SourceError(f"{where} answers from another region ({message}); set region")
    if whole_bucket and code in DENIED_CODES:
        return SourceError(
            f"{where} denied access ({code}: {message}); the credentials need "
            "s3:ListBucket on the bucket and s3:GetObject on its objects"
        )
    return SourceError(f"{where} failed: {code}: {message}") if whole_bucket else None
