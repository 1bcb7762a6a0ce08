"""Live export to a Label Studio project over its REST API.

Auth: a legacy API token is sent as `Authorization: Token <t>`; a personal access token
(a JWT) is traded at `POST /api/token/refresh/` for a short-lived access token sent as
`Bearer`, traded again whenever Label Studio answers 401.

No duplicates: an asset is skipped when its `exports` payload already holds this project
(and server), and also when the project already has a task whose `data.asset_id` is the
asset (read from `GET /api/tasks/`), so a lost local record cannot duplicate tasks; such
assets get their local record back. An import that failed in a way that may still have
landed (a timeout, a 5xx) re-reads the project's tasks before it is retried.
Assets are recorded as exported only after Label Studio accepted their batch.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import httpx

from service.errors import ExportError, ExportUnavailable, InvalidQuery
from service.export import label_studio_tasks as tasks
from service.export.base import ExportContext, Selected, already_exported, register
from service.export.schemas import MAX_SELECTION, ExportRequest, LabelStudioOptions
from service.retry import RetryPolicy
from service.state import LabelSetRow

if TYPE_CHECKING:
    from service.catalog.catalog import Catalog

log = logging.getLogger(__name__)
TARGET = "label-studio"
TIMEOUT_S = 30.0
TASK_PAGE = 1000
RETRIES = 3
BACKOFF_S = 0.5
RETRY = RetryPolicy(attempts=RETRIES, base_s=BACKOFF_S)
# Calls that change nothing on the server: `request` tries them again itself. An import is
# not one of them (it may have landed): `_push` looks at the project before it tries again.
IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS"})


class Transient(ExportUnavailable):
    """A failure worth retrying: the request may not have reached Label Studio, or it was busy."""


class Refused(ExportError):
    """Label Studio refused this request's content (a 4xx other than auth): only its assets fail."""


def _is_pat(token: str) -> bool:
    return token.startswith("eyJ") and token.count(".") == 2


class LabelStudioClient:
    """The few Label Studio endpoints Loupe needs, with its errors mapped to ExportError."""

    def __init__(self, url: str, token: str, *, transport: httpx.BaseTransport | None = None) -> None:
        self.url = url.rstrip("/")
        self._token = token
        self._http = httpx.Client(base_url=self.url, timeout=TIMEOUT_S, transport=transport)
        self._access: str | None = None

    def close(self) -> None:
        self._http.close()

    # -- transport and auth --------------------------------------------------

    def _auth(self, *, renew: bool = False) -> str:
        if not _is_pat(self._token):
            return f"Token {self._token}"
        if self._access is None or renew:
            resp = self._send("POST", "/api/token/refresh/", json={"refresh": self._token}, auth=None)
            if resp.status_code in (400, 401, 403):
                raise ExportError(
                    f"Label Studio at {self.url} refused the personal access token "
                    f"(HTTP {resp.status_code}); it may be revoked or from another server: "
                    "create one under Account & Settings"
                )
            self._check(resp, "refresh the access token")
            self._access = str(resp.json()["access"])
        return f"Bearer {self._access}"

    def _send(self, method: str, path: str, *, auth: str | None, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": auth} if auth else {}
        try:
            return self._http.request(method, path, headers=headers, **kwargs)
        except httpx.TimeoutException as exc:
            raise Transient(
                f"Label Studio at {self.url} did not answer in {TIMEOUT_S:.0f} s ({exc})"
            ) from None
        except httpx.HTTPError as exc:
            raise Transient(
                f"cannot reach Label Studio at {self.url}: {exc}; check label_studio.url and that it runs"
            ) from None

    def request(
        self, method: str, path: str, *, what: str, missing_ok: bool = False, **kwargs: Any
    ) -> httpx.Response:
        """One authorised call; a 401 on an expired access token renews it once.

        `missing_ok` returns a 404 to the caller, who knows what was missing. A read is
        tried again (RETRY) while Label Studio is unreachable or answers 429/5xx; 401,
        403 and 404 are answers, never retried.
        """

        def once() -> httpx.Response:
            return self._request_once(method, path, what=what, missing_ok=missing_ok, **kwargs)

        if method.upper() not in IDEMPOTENT:
            return once()
        return RETRY.call(once, what=f"Label Studio at {self.url}: {what}")

    def _request_once(
        self, method: str, path: str, *, what: str, missing_ok: bool, **kwargs: Any
    ) -> httpx.Response:
        resp = self._send(method, path, auth=self._auth(), **kwargs)
        if resp.status_code == 401 and _is_pat(self._token):
            resp = self._send(method, path, auth=self._auth(renew=True), **kwargs)
        if resp.status_code in (401, 403):
            kind = "personal access token" if _is_pat(self._token) else "API token"
            raise ExportError(
                f"Label Studio at {self.url} refused the {kind} (HTTP {resp.status_code}) when trying to "
                f"{what}; check label_studio.token (legacy tokens must be enabled in the organization)"
            )
        if not (missing_ok and resp.status_code == 404):
            self._check(resp, what)
        return resp

    def _check(self, resp: httpx.Response, what: str) -> None:
        if resp.status_code < 400:
            return
        text = resp.text[:300].replace("\n", " ")
        msg = f"Label Studio at {self.url} could not {what}: HTTP {resp.status_code} {text}"
        if resp.status_code == 429 or resp.status_code >= 500:
            raise Transient(msg)
        if resp.status_code in (401, 403, 404):
            raise ExportError(msg)
        raise Refused(msg)

    # -- endpoints -------------------------------------------------------------

    def check_access(self) -> None:
        """One cheap authorised call (every Label Studio version lists projects)."""
        self.request("GET", "/api/projects/", what="list projects", params={"page_size": 1})

    def project(self, project_id: int) -> dict[str, Any]:
        resp = self.request("GET", f"/api/projects/{project_id}/", what="read the project", missing_ok=True)
        if resp.status_code == 404:
            raise ExportError(
                f"Label Studio at {self.url} has no project {project_id} that this token can see; "
                "pass an existing project_id, or a title to create a project"
            )
        return resp.json()  # type: ignore[no-any-return]

    def create_project(self, title: str, label_config: str) -> dict[str, Any]:
        body = {"title": title, "label_config": label_config}
        return self.request("POST", "/api/projects/", what="create a project", json=body).json()  # type: ignore[no-any-return]

    def import_tasks(self, project_id: int, batch: list[dict[str, Any]]) -> int:
        """Import tasks in one request (Label Studio accepts or refuses the batch whole)."""
        resp = self.request("POST", f"/api/projects/{project_id}/import", what="import tasks", json=batch)
        return int(resp.json().get("task_count", len(batch)))

    def asset_ids(self, project_id: int) -> set[str]:
        """The `data.asset_id` of every task in the project.

        Pages are followed until `total` is reached or a page is empty: the server may cap
        the page size below the one asked for (TASK_API_PAGE_SIZE_MAX).
        """
        found: set[str] = set()
        seen, page = 0, 1
        while True:
            params = {"project": project_id, "page": page, "page_size": TASK_PAGE, "fields": "task_only"}
            resp = self.request(
                "GET", "/api/tasks/", what="list the project's tasks", missing_ok=page > 1, params=params
            )
            if resp.status_code == 404:  # past the last page
                return found
            body = resp.json()
            rows = body.get("tasks", []) if isinstance(body, dict) else body
            found.update(str(t["data"]["asset_id"]) for t in rows if (t.get("data") or {}).get("asset_id"))
            seen += len(rows)
            total = body.get("total") if isinstance(body, dict) else None
            if not rows or (total is not None and seen >= total):
                return found
            page += 1


@register(TARGET)
class LabelStudioExporter:
    """Pushes the selection into a project as tasks, once per asset."""

    target = TARGET

    def __init__(self, *, transport: httpx.BaseTransport | None = None) -> None:
        self._transport = transport
        self.client: LabelStudioClient | None = None
        self.project_id: int | None = None
        self.shape = tasks.TaskShape()
        self.pred_set: LabelSetRow | None = None  # label_studio.predictions_set, checked

    def check(self, request: ExportRequest) -> None:
        if request.label_studio is None:
            raise InvalidQuery(
                "target label-studio needs {url, token, project_id | title}", path="label_studio"
            )
        if request.path is not None:
            raise InvalidQuery(
                "label-studio pushes to a server; for a tasks file use label-studio-json", path="path"
            )
        if request.label_studio.label_config is not None:
            tasks.shape_of(request.label_studio.label_config)

    def prepare(self, ctx: ExportContext) -> None:
        opts = self._opts(ctx)
        self.pred_set = _predictions_set(ctx.catalog, opts.predictions_set)
        self.client = LabelStudioClient(opts.url, opts.token.get_secret_value(), transport=self._transport)
        try:
            self.client.check_access()
            # A resumed export uses the project its first run created, never a second one.
            project_id = opts.project_id or ctx.checkpoint.get("project_id")
            if project_id is not None:
                self._use_project(ctx, self.client.project(int(project_id)))
        except BaseException:
            self.client.close()
            raise

    def close(self) -> None:
        if self.client is not None:
            self.client.close()

    def _opts(self, ctx: ExportContext) -> LabelStudioOptions:
        assert ctx.request.label_studio is not None, "check() first"
        return ctx.request.label_studio

    def _use_project(self, ctx: ExportContext, project: dict[str, Any]) -> None:
        self.project_id = int(project["id"])
        self.shape = tasks.shape_of(project.get("label_config") or "", where="the project's label config")
        ctx.location = f"{self._opts(ctx).url}/projects/{self.project_id}/data"

    def run(self, ctx: ExportContext, batches: Iterable[list[Selected]]) -> None:
        assert self.client is not None, "prepare() first"
        try:
            items = self._materialise(batches)
            opts = self._opts(ctx)
            on_server: set[str] = set()
            if self.project_id is None:
                self._create_project(ctx, items)
            else:
                on_server = self.client.asset_ids(self.project_id)
            todo = self._skip_known(ctx, items, on_server)
            for start in range(0, len(todo), opts.batch_size):
                self._push(ctx, todo[start : start + opts.batch_size])
                ctx.progress()
        finally:
            self.client.close()

    def _materialise(self, batches: Iterable[list[Selected]]) -> list[Selected]:
        # Whole, because a new project's choices come from the labels of the whole selection.
        items: list[Selected] = []
        for batch in batches:
            items.extend(batch)
            if len(items) > MAX_SELECTION:
                raise InvalidQuery(
                    f"select at most {MAX_SELECTION:,} assets per Label Studio export", path="limit"
                )
        return items

    def _create_project(self, ctx: ExportContext, items: list[Selected]) -> None:
        assert self.client is not None
        opts = self._opts(ctx)
        config = opts.label_config
        if config is None and self.pred_set is not None:
            config = _set_config(self.pred_set, items)
        if config is None:
            labels = (
                tasks.model_label(i.asset.get("metadata") or {}, opts.prediction_field)[0] for i in items
            )
            config = tasks.default_label_config(label for group in labels for label in group)
        assert opts.title is not None
        self._use_project(ctx, self.client.create_project(opts.title, config))
        ctx.save_checkpoint(project_id=self.project_id)

    def _skip_known(self, ctx: ExportContext, items: list[Selected], on_server: set[str]) -> list[Selected]:
        """Leave out assets the project already holds; restore lost local records of them."""
        project, url = str(self.project_id), self._opts(ctx).url
        todo: list[Selected] = []
        unrecorded: list[Selected] = []
        for item in items:
            recorded = already_exported(item.asset, target=TARGET, project=project, url=url)
            if recorded or item.id in on_server:
                ctx.counts.skipped += 1
                if not recorded:
                    unrecorded.append(item)
            else:
                todo.append(item)
        if unrecorded:
            log.info("project %s already holds %d asset(s) not recorded locally", project, len(unrecorded))
            ctx.record(unrecorded, project=project, url=url, location=ctx.location)
        return todo

    def _task(self, ctx: ExportContext, item: Selected) -> dict[str, Any]:
        opts = self._opts(ctx)
        meta = item.asset.get("metadata") or {}
        prediction = tasks.model_label(meta, opts.prediction_field) if opts.predictions else None
        from_set = None
        if self.pred_set is not None and opts.predictions:
            version = self.pred_set.model or f"loupe:{self.pred_set.name}"
            from_set = tasks.set_prediction(item.asset, self.pred_set.name, model_version=version)
        return tasks.build_task(
            asset=item.asset,
            image_url=ctx.image_url(item.asset),
            score=item.score,
            metadata=ctx.metadata(item.asset),
            shape=self.shape,
            prediction=None if self.pred_set is not None else prediction,
            from_set=from_set,
        )

    def _push(self, ctx: ExportContext, batch: list[Selected]) -> None:
        """Import one batch with retries; record it only once Label Studio holds it."""
        assert self.client is not None and self.project_id is not None
        payload = [self._task(ctx, item) for item in batch]
        pending = batch
        for attempt in range(1, RETRIES + 1):
            try:
                self.client.import_tasks(self.project_id, payload)
            except Transient as exc:
                if attempt == RETRIES:
                    raise ExportError(f"{exc.detail} (gave up after {RETRIES} tries)") from None
                time.sleep(RETRY.delay(attempt))
                # The failed request may have landed after all: keep only what is still missing.
                landed = self.client.asset_ids(self.project_id)
                self._accepted(ctx, [i for i in pending if i.id in landed])
                keep = [n for n, i in enumerate(pending) if i.id not in landed]
                pending, payload = [pending[n] for n in keep], [payload[n] for n in keep]
                if not pending:
                    return
                continue
            except Refused as exc:  # Label Studio refused this batch: its assets failed
                for item in pending:
                    ctx.fail(item.id, exc.detail)
                return
            self._accepted(ctx, pending)
            return

    def _accepted(self, ctx: ExportContext, items: list[Selected]) -> None:
        if items:
            ctx.counts.sent += len(items)
            ctx.record(items, project=str(self.project_id), url=self._opts(ctx).url, location=ctx.location)


def _predictions_set(catalog: Catalog, name: str | None) -> LabelSetRow | None:
    """The predictions set a request names, checked; a 422 naming the field otherwise."""
    if name is None:
        return None
    # Read from the state store directly: service.labels imports this module (its Label Studio pulls).
    with catalog.state.session() as session:
        row = session.get(LabelSetRow, name)
    if row is None:
        raise InvalidQuery(
            f"no label set named {name!r} (GET /api/v1/labelsets lists them)",
            path="label_studio.predictions_set",
        )
    if row.role != "predictions":
        raise InvalidQuery(
            f"label set {name!r} is {row.role}; pre-annotations come from a predictions set",
            path="label_studio.predictions_set",
        )
    return row


def _set_config(row: LabelSetRow, items: list[Selected]) -> str:
    """A new project's config from a predictions set: its classes and the labels the selection has."""
    seen: set[str] = set(row.classes or [])
    for item in items:
        value = (item.asset.get("labels") or {}).get(row.name) or {}
        if row.task == "detection":
            seen.update(str(b.get("label")) for b in value.get("boxes") or [])
        elif isinstance(value.get("label"), str):
            seen.add(value["label"])
    return tasks.default_label_config(seen, boxes=seen if row.task == "detection" else None)
