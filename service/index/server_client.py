"""qdrant-client at Loupe's boundary: the AST as its models, its client, its errors as ours."""

from __future__ import annotations

import contextlib
import json
import math
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx
import numpy as np
from qdrant_client import QdrantClient, models
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

from service.config import IndexSettings
from service.errors import IndexUnavailable, InvalidQuery, LoupeError
from service.index.base import Condition, Filter, HasVector
from service.index.plan import SearchPlan, qdrant_key
from service.retry import RetryPolicy

T = TypeVar("T")
TRANSIENT_STATUS = (502, 503, 504)


# -- translation -------------------------------------------------------------


def to_qdrant(node: Filter | None) -> models.Filter | None:
    return None if node is None else _qdrant_filter(node)


def _qdrant_filter(node: Filter) -> models.Filter:
    def parts(items: Sequence[Condition | Filter | HasVector]) -> list[Any] | None:
        return [_qdrant_node(i) for i in items] or None

    return models.Filter(must=parts(node.must), should=parts(node.should), must_not=parts(node.must_not))


def _qdrant_node(node: Condition | Filter | HasVector) -> Any:
    if isinstance(node, Filter):
        return _qdrant_filter(node)
    if isinstance(node, HasVector):
        return models.HasVectorCondition(has_vector=node.name)
    key = qdrant_key(node.key)
    if node.eq is not None:
        return models.FieldCondition(key=key, match=models.MatchValue(value=node.eq))
    if node.any_of is not None:
        return models.FieldCondition(key=key, match=models.MatchAny(any=list(node.any_of)))
    if node.match is not None:
        return models.FieldCondition(key=key, match=models.MatchText(text=node.match))
    if node.exists is not None:
        empty = models.IsEmptyCondition(is_empty=models.PayloadField(key=key))
        return models.Filter(must_not=[empty]) if node.exists else empty
    if node.range is not None:
        bounds = dict(node.range)
        if node.is_datetime:
            dates = {k: str(v) for k, v in bounds.items()}
            return models.FieldCondition(key=key, range=models.DatetimeRange(**dates))  # type: ignore[arg-type]
        numbers = {k: float(v) for k, v in bounds.items()}
        return models.FieldCondition(key=key, range=models.Range(**numbers))
    raise InvalidQuery(f"condition on {node.key} has no operator", path="filter")


def search_params(plan: SearchPlan, settings: IndexSettings) -> models.SearchParams:
    # The plan already weighed selectivity, so ACORN runs whenever it asks for it.
    acorn = models.AcornSearchParams(enable=True, max_selectivity=1.0) if plan.acorn else None
    quant = None
    if settings.quantization != "none":
        quant = models.QuantizationSearchParams(rescore=True, oversampling=settings.oversampling)
    return models.SearchParams(hnsw_ef=plan.hnsw_ef, exact=plan.exact, acorn=acorn, quantization=quant)


def quantization_config(settings: IndexSettings) -> models.ScalarQuantization | None:
    """The int8 copy of the vectors a new collection keeps in RAM (LOUPE_INDEX__QUANTIZATION)."""
    if settings.quantization == "none":
        return None
    return models.ScalarQuantization(
        scalar=models.ScalarQuantizationConfig(type=models.ScalarType.INT8, quantile=0.99, always_ram=True)
    )


def vector(v: np.ndarray) -> list[float]:
    return np.asarray(v, dtype=np.float32).reshape(-1).tolist()


def point_id(value: str, *, path: str = "ids") -> str:
    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        raise InvalidQuery(f"{value!r} is not an asset id (a UUID)", path=path) from None


# -- the client and its errors -------------------------------------------------------


def make_client(where: str, *, api_key: str | None, timeout_s: float) -> QdrantClient:
    if where == ":memory:":
        return QdrantClient(location=":memory:")
    if where.startswith(("http://", "https://")):
        return QdrantClient(
            url=where,
            api_key=api_key,
            timeout=max(1, math.ceil(timeout_s)),
            check_compatibility=False,  # it would call the server here; the first call tells
        )
    return QdrantClient(path=where)


def redact(where: str) -> str:
    """The location for messages, without credentials embedded in a URL."""
    parts = urlsplit(where)
    if parts.password or parts.username:
        port = f":{parts.port}" if parts.port else ""
        return parts._replace(netloc=f"{parts.hostname or ''}{port}").geturl()
    return where


def transient(cause: BaseException | None) -> bool:
    """Whether a qdrant-client failure may pass on another try: no answer, or a busy server."""
    if isinstance(cause, UnexpectedResponse):
        return cause.status_code in TRANSIENT_STATUS
    return isinstance(cause, ResponseHandlingException | httpx.TransportError)


def call(where: str, what: str, fn: Callable[[], T], *, retries: int) -> T:
    """`fn()` (one qdrant-client call) with its errors mapped, tried `retries` more times while transient.

    Every call Loupe makes is idempotent (reads, upserts and deletes by id), so
    a retried write is safe.
    """

    def once() -> T:
        with qdrant_errors(where, what):
            return fn()

    return RetryPolicy(attempts=retries + 1).call(once, what=f"Qdrant at {where}: {what}")


@contextlib.contextmanager
def qdrant_errors(where: str, what: str) -> Iterator[None]:
    """Map qdrant-client's exceptions (server and local mode) onto Loupe's tree.

    No answer, or 502/503/504, is a transient IndexUnavailable: `call` tries again.
    """
    try:
        yield
    except LoupeError:
        raise
    except UnexpectedResponse as exc:
        status, detail = exc.status_code or 0, _detail(exc)
        if status in (401, 403):
            raise IndexUnavailable(
                f"Qdrant at {where} refused the request ({status}); check LOUPE_QDRANT_API_KEY"
            ) from exc
        if status in TRANSIENT_STATUS:
            raise IndexUnavailable(f"Qdrant at {where} failed to {what}: {detail}", transient=True) from exc
        if status >= 500 or status in (404, 408, 429):
            raise IndexUnavailable(f"Qdrant at {where} failed to {what}: {detail}") from exc
        raise InvalidQuery(f"Qdrant cannot {what}: {detail}") from exc
    except (ResponseHandlingException, httpx.HTTPError) as exc:
        source = getattr(exc, "source", None) or exc
        message = f"cannot reach Qdrant at {where}: {source}"
        raise IndexUnavailable(message, transient=transient(exc)) from exc
    except ValueError as exc:  # local mode's way of saying "bad request"
        raise InvalidQuery(f"Qdrant cannot {what}: {exc}") from exc


def _detail(exc: UnexpectedResponse) -> str:
    try:
        body = json.loads(exc.content)
        return str(body.get("status", {}).get("error") or body)
    except (ValueError, AttributeError):
        return f"{exc.status_code} {exc.reason_phrase}"
