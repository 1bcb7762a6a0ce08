"""How the CLI reaches the catalog: in this process, or through a running `loupe serve`.

The embedded index belongs to one process. While `loupe serve` runs (found via
LOUPE_URL or the `server.json` it writes under LOUPE_HOME), CLI commands go
through its API; otherwise they open the catalog in process.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

import httpx

from service import errors
from service.config import Settings
from service.discovery import running_server
from service.evals.schemas import EvaluationRequest
from service.export.schemas import ExportRequest
from service.schemas import SearchRequest

Progress = Callable[[dict[str, Any]], None]


class Client(Protocol):
    def add_source(self, name: str, kind: str, config: dict[str, Any]) -> dict[str, Any]: ...
    def list_sources(self) -> list[dict[str, Any]]: ...
    def remove_source(self, name: str) -> None: ...
    def sync(
        self,
        name: str,
        *,
        full: bool,
        prune: bool,
        progress: Progress,
        engine: str | None = None,
        address: str | None = None,
    ) -> dict[str, Any]: ...
    def search(self, req: SearchRequest, *, images: Sequence[bytes] = ()) -> dict[str, Any]: ...
    def get_asset(self, asset_id: str) -> dict[str, Any]: ...
    def export(self, req: ExportRequest, *, download_to: Path | None = None) -> dict[str, Any]: ...
    def list_jobs(self, *, kind: str | None, state: str | None, limit: int) -> list[dict[str, Any]]: ...
    def get_job(self, job_id: str) -> dict[str, Any]: ...
    def cancel_job(self, job_id: str) -> dict[str, Any]: ...
    def select(self, body: dict[str, Any], *, progress: Progress) -> dict[str, Any]: ...
    def list_selections(self, *, limit: int) -> list[dict[str, Any]]: ...
    def get_selection(self, name: str) -> dict[str, Any]: ...
    def remove_selection(self, name: str) -> None: ...
    def evaluate(self, req: EvaluationRequest, *, progress: Progress) -> dict[str, Any]: ...
    def list_evaluations(self, *, limit: int) -> list[dict[str, Any]]: ...
    def get_evaluation(self, evaluation_id: str) -> dict[str, Any]: ...
    def remove_evaluation(self, evaluation_id: str) -> None: ...
    def compare_evaluations(self, a: str, b: str) -> dict[str, Any]: ...
    def compute_signal(self, kind: str, body: dict[str, Any], *, progress: Progress) -> dict[str, Any]: ...
    def list_signals(self) -> list[dict[str, Any]]: ...
    def list_duplicates(self, *, filter: dict[str, Any] | None, limit: int) -> list[dict[str, Any]]: ...
    def apply_labeling_function(self, body: dict[str, Any], *, progress: Progress) -> dict[str, Any]: ...
    def list_labeling_functions(self) -> list[dict[str, Any]]: ...
    def get_labeling_function(self, name: str) -> dict[str, Any]: ...
    def label_assets(self, name: str, body: dict[str, Any]) -> dict[str, Any]: ...
    def list_spaces(self) -> list[dict[str, Any]]: ...
    def add_space(self, name: str, *, dim: int, distance: str) -> dict[str, Any]: ...
    def remove_space(self, name: str) -> None: ...
    def import_vectors(self, space: str, path: Path) -> dict[str, Any]: ...
    def sync_space(
        self, name: str, *, space: str, model: str, pretrained: str | None, full: bool
    ) -> dict[str, Any]: ...
    def list_labelsets(self) -> list[dict[str, Any]]: ...
    def get_labelset(self, name: str) -> dict[str, Any]: ...
    def create_labelset(self, body: dict[str, Any]) -> dict[str, Any]: ...
    def remove_labelset(self, name: str) -> None: ...
    def import_labels(
        self,
        name: str,
        *,
        file: Path | None,
        fmt: str | None,
        source: str | None,
        body: dict[str, Any] | None,
    ) -> dict[str, Any]: ...
    def close(self) -> None: ...


class LocalClient:
    """The catalog opened in this process."""

    def __init__(self, settings: Settings, *, catalog: Any = None) -> None:
        """Open the catalog of `settings`, or use `catalog`, one this process already holds."""
        from service.catalog.catalog import Catalog

        self.catalog = catalog if catalog is not None else Catalog(settings)

    def add_source(self, name: str, kind: str, config: dict[str, Any]) -> dict[str, Any]:
        return self.catalog.public_source(self.catalog.add_source(name, kind, config))

    def list_sources(self) -> list[dict[str, Any]]:
        return [self.catalog.public_source(r) for r in self.catalog.state.list_sources()]

    def remove_source(self, name: str) -> None:
        self.catalog.remove_source(name)

    def sync(
        self,
        name: str,
        *,
        full: bool,
        prune: bool,
        progress: Progress,
        engine: str | None = None,
        address: str | None = None,
    ) -> dict[str, Any]:
        from service.schemas import job_public

        def report(r: Any) -> None:
            progress({"done": r.done, "total": r.total, "rate": r.rate})

        job = self.catalog.sync(
            name, full=full, prune=prune, engine=engine, address=address, on_progress=report
        )
        return job_public(job).model_dump()

    def search(self, req: SearchRequest, *, images: Sequence[bytes] = ()) -> dict[str, Any]:
        hits, nxt = self.catalog.search(req, images=images)
        return {"hits": hits, "next_offset": nxt}

    def get_asset(self, asset_id: str) -> dict[str, Any]:
        return self.catalog.get_asset(asset_id)

    def export(self, req: ExportRequest, *, download_to: Path | None = None) -> dict[str, Any]:
        """Run the export here; a file target is written straight to `download_to`."""
        from service.export.runner import export_public, run_now

        if download_to is not None:
            # The user named this file on their own machine: replacing it is what they asked for.
            req = req.model_copy(update={"path": str(download_to), "overwrite": True})
        # Without a server, content URLs name the address `loupe serve` listens on by default.
        base_url = self.catalog.settings.public_url or "http://127.0.0.1:8000"
        return export_public(run_now(self.catalog, req, base_url=base_url)).model_dump()

    def list_jobs(self, *, kind: str | None, state: str | None, limit: int) -> list[dict[str, Any]]:
        from service.jobs.kinds import kind_for
        from service.schemas import job_public

        if kind is not None:
            kind_for(kind)
        rows = self.catalog.jobs.list(kind=kind, states=None if state is None else [state], limit=limit)
        return [job_public(r).model_dump() for r in rows]

    def get_job(self, job_id: str) -> dict[str, Any]:
        from service.schemas import job_public

        return job_public(self.catalog.jobs.get(job_id)).model_dump()

    def cancel_job(self, job_id: str) -> dict[str, Any]:
        from service.jobs.runner import cancel
        from service.schemas import job_public

        return job_public(cancel(self.catalog, job_id)).model_dump()

    def select(self, body: dict[str, Any], *, progress: Progress) -> dict[str, Any]:
        from service.selections.jobs import run_now, selection_public
        from service.selections.schemas import SelectionRequest

        row = run_now(self.catalog, SelectionRequest.model_validate(body))
        return selection_public(row).model_dump(mode="json")

    def list_selections(self, *, limit: int) -> list[dict[str, Any]]:
        from service.selections.jobs import selection_public
        from service.selections.store import SelectionStore

        rows = SelectionStore(self.catalog.state).list(limit=limit)
        return [selection_public(r).model_dump(mode="json") for r in rows]

    def get_selection(self, name: str) -> dict[str, Any]:
        from service.selections.jobs import selection_public
        from service.selections.store import SelectionStore

        return selection_public(SelectionStore(self.catalog.state).get(name)).model_dump(mode="json")

    def remove_selection(self, name: str) -> None:
        from service.selections.jobs import delete

        delete(self.catalog, name)

    def evaluate(self, req: EvaluationRequest, *, progress: Progress) -> dict[str, Any]:
        from service.evals.runner import evaluation_public, run_now

        return evaluation_public(run_now(self.catalog, req)).model_dump(mode="json")

    def list_evaluations(self, *, limit: int) -> list[dict[str, Any]]:
        from service.evals.runner import evaluation_public
        from service.evals.store import EvaluationStore

        rows = EvaluationStore(self.catalog.state).list(limit=limit)
        return [evaluation_public(r).model_dump(mode="json") for r in rows]

    def get_evaluation(self, evaluation_id: str) -> dict[str, Any]:
        from service.evals.runner import evaluation_public
        from service.evals.store import EvaluationStore

        row = EvaluationStore(self.catalog.state).get(evaluation_id)
        return evaluation_public(row).model_dump(mode="json")

    def remove_evaluation(self, evaluation_id: str) -> None:
        from service.evals.runner import delete

        delete(self.catalog, evaluation_id)

    def compare_evaluations(self, a: str, b: str) -> dict[str, Any]:
        from service.evals.compare import compare

        return compare(self.catalog, a, b).model_dump(mode="json")

    def compute_signal(self, kind: str, body: dict[str, Any], *, progress: Progress) -> dict[str, Any]:
        from service.schemas import job_public
        from service.signals.plan import run_now
        from service.signals.schemas import SignalRequest

        row = run_now(self.catalog, kind, SignalRequest.model_validate(body))
        return job_public(row).model_dump(mode="json")

    def list_signals(self) -> list[dict[str, Any]]:
        from service.signals.views import list_signals

        return [s.model_dump(mode="json") for s in list_signals(self.catalog)]

    def list_duplicates(self, *, filter: dict[str, Any] | None, limit: int) -> list[dict[str, Any]]:
        from service.signals.views import duplicate_groups

        page = duplicate_groups(self.catalog, filter=filter, limit=limit, cursor=None)
        return [g.model_dump(mode="json") for g in page.data]

    def apply_labeling_function(self, body: dict[str, Any], *, progress: Progress) -> dict[str, Any]:
        from service.labelfns.runner import run_now
        from service.labelfns.schemas import LabelingFunctionCreate
        from service.labelfns.store import function_public

        row = run_now(self.catalog, LabelingFunctionCreate.model_validate(body))
        return function_public(row).model_dump(mode="json")

    def list_labeling_functions(self) -> list[dict[str, Any]]:
        from service.labelfns.store import LabelingFunctionStore, function_public

        return [
            function_public(r).model_dump(mode="json")
            for r in LabelingFunctionStore(self.catalog.state).all()
        ]

    def get_labeling_function(self, name: str) -> dict[str, Any]:
        from service.labelfns.store import LabelingFunctionStore, function_public

        return function_public(LabelingFunctionStore(self.catalog.state).get(name)).model_dump(mode="json")

    def label_assets(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        from service.labels.bulk import BulkLabel, label

        return label(self.catalog, name, BulkLabel.model_validate(body), who="anonymous").model_dump()

    def list_spaces(self) -> list[dict[str, Any]]:
        from service.spaces.registry import list_spaces

        return [s.model_dump() for s in list_spaces(self.catalog)]

    def add_space(self, name: str, *, dim: int, distance: str) -> dict[str, Any]:
        from service.spaces.registry import create_space
        from service.spaces.schemas import VectorSpaceCreate

        body = VectorSpaceCreate.model_validate({"name": name, "dim": dim, "distance": distance})
        return create_space(self.catalog, name=body.name, dim=body.dim, distance=body.distance).model_dump()

    def remove_space(self, name: str) -> None:
        from service.spaces.registry import delete_space

        delete_space(self.catalog, name)

    def import_vectors(self, space: str, path: Path) -> dict[str, Any]:
        from service.schemas import job_public
        from service.spaces.imports import begin_import

        try:
            with open(path, "rb") as f:
                job = begin_import(self.catalog, space=space, filename=path.name, data=f, run_here=True)
        except OSError as exc:
            raise errors.LoupeError(f"cannot read {path}: {exc.strerror or exc}") from None
        return job_public(job).model_dump()

    def sync_space(
        self, name: str, *, space: str, model: str, pretrained: str | None, full: bool
    ) -> dict[str, Any]:
        from service.schemas import job_public
        from service.spaces.model_sync import run_space_sync_now

        options = {"space": space, "model": model, "pretrained": pretrained, "full": full}
        job = run_space_sync_now(self.catalog, name, **options)
        return job_public(job).model_dump()

    def list_labelsets(self) -> list[dict[str, Any]]:
        from service.labels import admin

        return [s.model_dump() for s in admin.all_sets(self.catalog)]

    def get_labelset(self, name: str) -> dict[str, Any]:
        from service.labels import admin

        return admin.get(self.catalog, name).model_dump()

    def create_labelset(self, body: dict[str, Any]) -> dict[str, Any]:
        from service.labels import admin
        from service.labels.schemas import LabelSetCreate

        return admin.create(self.catalog, LabelSetCreate.model_validate(body)).model_dump()

    def remove_labelset(self, name: str) -> None:
        from service.labels import admin

        admin.remove(self.catalog, name)

    def import_labels(
        self,
        name: str,
        *,
        file: Path | None,
        fmt: str | None,
        source: str | None,
        body: dict[str, Any] | None,
    ) -> dict[str, Any]:
        """Check and start the import here, then run its job in this thread."""
        from service.jobs.runner import execute
        from service.labels import admin
        from service.labels.schemas import AnnotationImport
        from service.schemas import job_public

        if file is not None:
            data = file.read_bytes()
            job = admin.begin_upload(self.catalog, name, data, fmt=fmt or "loupe", source=source, here=True)
        else:
            job = admin.begin_json(self.catalog, name, AnnotationImport.model_validate(body or {}), here=True)
        return job_public(execute(self.catalog, job)).model_dump()

    def close(self) -> None:
        # A sync's graph build must finish before the process exits, or it is lost.
        self.catalog.close()


class RemoteClient:
    """A running `loupe serve`, over its REST API."""

    def __init__(self, url: str, *, timeout: float = 60.0) -> None:
        self.url = url
        self.http = httpx.Client(base_url=f"{url}/api/v1", timeout=timeout)

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            resp = self.http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise errors.LoupeError(f"cannot reach the Loupe server at {self.url}: {exc}") from None
        if resp.status_code >= 400:
            raise _error_from(resp)
        return None if resp.status_code == 204 else resp.json()

    def add_source(self, name: str, kind: str, config: dict[str, Any]) -> dict[str, Any]:
        return self._call("POST", "/sources", json={"name": name, "kind": kind, "config": config})  # type: ignore[no-any-return]

    def list_sources(self) -> list[dict[str, Any]]:
        return self._call("GET", "/sources")["data"]  # type: ignore[no-any-return]

    def remove_source(self, name: str) -> None:
        self._call("DELETE", f"/sources/{name}")

    def sync(
        self,
        name: str,
        *,
        full: bool,
        prune: bool,
        progress: Progress,
        engine: str | None = None,
        address: str | None = None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"full": full, "prune": prune}
        body.update({k: v for k, v in (("engine", engine), ("address", address)) if v is not None})
        job = self._call("POST", f"/sources/{name}/sync", json=body)
        while job["state"] in ("queued", "running"):
            progress(job)
            time.sleep(0.5)
            job = self._call("GET", f"/jobs/{job['id']}")
        return job  # type: ignore[no-any-return]

    def list_jobs(self, *, kind: str | None, state: str | None, limit: int) -> list[dict[str, Any]]:
        params = {k: v for k, v in (("kind", kind), ("state", state), ("limit", limit)) if v is not None}
        return self._call("GET", "/jobs", params=params)["data"]  # type: ignore[no-any-return]

    def get_job(self, job_id: str) -> dict[str, Any]:
        return self._call("GET", f"/jobs/{job_id}")  # type: ignore[no-any-return]

    def cancel_job(self, job_id: str) -> dict[str, Any]:
        return self._call("DELETE", f"/jobs/{job_id}")  # type: ignore[no-any-return]

    def select(self, body: dict[str, Any], *, progress: Progress) -> dict[str, Any]:
        selection = self._call("POST", "/selections", json=body)
        while selection["state"] in ("queued", "running"):
            progress(self._call("GET", f"/jobs/{selection['job_id']}"))
            time.sleep(0.2)
            selection = self._call("GET", f"/selections/{selection['name']}")
        return selection  # type: ignore[no-any-return]

    def list_selections(self, *, limit: int) -> list[dict[str, Any]]:
        return self._call("GET", "/selections", params={"limit": limit})["data"]  # type: ignore[no-any-return]

    def get_selection(self, name: str) -> dict[str, Any]:
        return self._call("GET", f"/selections/{name}")  # type: ignore[no-any-return]

    def remove_selection(self, name: str) -> None:
        self._call("DELETE", f"/selections/{name}")

    def evaluate(self, req: EvaluationRequest, *, progress: Progress) -> dict[str, Any]:
        evaluation = self._call("POST", "/evaluations", json=req.model_dump(mode="json", exclude_none=True))
        while evaluation["state"] in ("queued", "running"):
            progress(self._call("GET", f"/jobs/{evaluation['job_id']}"))
            time.sleep(0.3)
            evaluation = self._call("GET", f"/evaluations/{evaluation['id']}")
        return evaluation  # type: ignore[no-any-return]

    def list_evaluations(self, *, limit: int) -> list[dict[str, Any]]:
        return self._call("GET", "/evaluations", params={"limit": limit})["data"]  # type: ignore[no-any-return]

    def get_evaluation(self, evaluation_id: str) -> dict[str, Any]:
        return self._call("GET", f"/evaluations/{evaluation_id}")  # type: ignore[no-any-return]

    def remove_evaluation(self, evaluation_id: str) -> None:
        self._call("DELETE", f"/evaluations/{evaluation_id}")

    def compute_signal(self, kind: str, body: dict[str, Any], *, progress: Progress) -> dict[str, Any]:
        job = self._call("POST", f"/signals/{kind}", json=body)
        while job["state"] in ("queued", "running"):
            progress(job)
            time.sleep(0.3)
            job = self._call("GET", f"/jobs/{job['id']}")
        return job  # type: ignore[no-any-return]

    def list_signals(self) -> list[dict[str, Any]]:
        return self._call("GET", "/signals")["data"]  # type: ignore[no-any-return]

    def list_duplicates(self, *, filter: dict[str, Any] | None, limit: int) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"limit": limit}
        if filter:
            params["filter"] = json.dumps(filter)
        return self._call("GET", "/duplicates", params=params)["data"]  # type: ignore[no-any-return]

    def compare_evaluations(self, a: str, b: str) -> dict[str, Any]:
        return self._call("POST", "/evaluations/compare", json={"a": a, "b": b})  # type: ignore[no-any-return]

    def apply_labeling_function(self, body: dict[str, Any], *, progress: Progress) -> dict[str, Any]:
        run = self._call("POST", "/labeling-functions", json=body)
        while True:
            job = self._call("GET", f"/jobs/{run['job_id']}")
            if job["state"] not in ("queued", "running"):
                return self._call("GET", f"/labeling-functions/{body['name']}")  # type: ignore[no-any-return]
            progress(job)
            time.sleep(0.3)

    def list_labeling_functions(self) -> list[dict[str, Any]]:
        return self._call("GET", "/labeling-functions")["data"]  # type: ignore[no-any-return]

    def get_labeling_function(self, name: str) -> dict[str, Any]:
        return self._call("GET", f"/labeling-functions/{name}")  # type: ignore[no-any-return]

    def label_assets(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        return self._call("POST", f"/labelsets/{name}/labels", json=body)  # type: ignore[no-any-return]

    def search(self, req: SearchRequest, *, images: Sequence[bytes] = ()) -> dict[str, Any]:
        if not images:
            return self._call("POST", "/search", json=req.model_dump(exclude_none=True))  # type: ignore[no-any-return]
        form: dict[str, Any] = {"limit": str(req.limit), "offset": str(req.offset)}
        if req.text:
            form["text"] = req.text
        if req.filter:
            form["filter"] = json.dumps(req.filter)
        if req.like:
            form["like"] = req.like
        if req.unlike:
            form["unlike"] = req.unlike
        if req.score_threshold is not None:
            form["score_threshold"] = str(req.score_threshold)
        if req.space is not None:
            form["space"] = req.space
        files = [
            ("images", (f"example{i}", data, "application/octet-stream")) for i, data in enumerate(images)
        ]
        return self._call("POST", "/search/image", data=form, files=files)  # type: ignore[no-any-return]

    def get_asset(self, asset_id: str) -> dict[str, Any]:
        return self._call("GET", f"/assets/{asset_id}")  # type: ignore[no-any-return]

    def export(self, req: ExportRequest, *, download_to: Path | None = None) -> dict[str, Any]:
        """Start the export on the server, wait for it, and download a file target to `download_to`."""
        body = req.model_dump(mode="json", exclude_none=True, exclude={"path"} if download_to else set())
        if req.label_studio is not None:  # the one place the token leaves in clear: to the server
            body["label_studio"]["token"] = req.label_studio.token.get_secret_value()
        export = self._call("POST", "/exports", json=body)
        while export["state"] in ("queued", "running"):
            time.sleep(0.5)
            export = self._call("GET", f"/exports/{export['id']}")
        if download_to is not None and export["state"] == "succeeded":
            self._download(f"/exports/{export['id']}/download", download_to)
            export["location"] = str(download_to)
        return export  # type: ignore[no-any-return]

    def _download(self, path: str, dest: Path) -> None:
        part = dest.with_name(f".{dest.name}.part")
        try:
            with self.http.stream("GET", path) as resp:
                if resp.status_code >= 400:
                    resp.read()
                    raise _error_from(resp)
                with open(part, "wb") as out:
                    for chunk in resp.iter_bytes():
                        out.write(chunk)
            part.replace(dest)
        except httpx.HTTPError as exc:
            raise errors.LoupeError(f"cannot download from the Loupe server at {self.url}: {exc}") from None
        except OSError as exc:
            raise errors.LoupeError(f"cannot write {dest}: {exc.strerror or exc}") from None
        finally:
            part.unlink(missing_ok=True)

    def _finished(self, job: dict[str, Any]) -> dict[str, Any]:
        while job["state"] in ("queued", "running"):
            time.sleep(0.5)
            job = self._call("GET", f"/jobs/{job['id']}")
        return job

    def list_spaces(self) -> list[dict[str, Any]]:
        return self._call("GET", "/vector-spaces")["data"]  # type: ignore[no-any-return]

    def add_space(self, name: str, *, dim: int, distance: str) -> dict[str, Any]:
        body = {"name": name, "dim": dim, "distance": distance}
        return self._call("POST", "/vector-spaces", json=body)  # type: ignore[no-any-return]

    def remove_space(self, name: str) -> None:
        self._call("DELETE", f"/vector-spaces/{name}")

    def import_vectors(self, space: str, path: Path) -> dict[str, Any]:
        try:
            with open(path, "rb") as f:
                job = self._call("POST", f"/vector-spaces/{space}/vectors", files={"file": (path.name, f)})
        except OSError as exc:
            raise errors.LoupeError(f"cannot read {path}: {exc.strerror or exc}") from None
        return self._finished(job)

    def sync_space(
        self, name: str, *, space: str, model: str, pretrained: str | None, full: bool
    ) -> dict[str, Any]:
        body = {"space": space, "model": model, "pretrained": pretrained, "full": full}
        body = {k: v for k, v in body.items() if v is not None}
        job = self._call("POST", f"/sources/{name}/sync", json=body)
        return self._finished(job)

    def list_labelsets(self) -> list[dict[str, Any]]:
        return self._call("GET", "/labelsets")["data"]  # type: ignore[no-any-return]

    def get_labelset(self, name: str) -> dict[str, Any]:
        return self._call("GET", f"/labelsets/{name}")  # type: ignore[no-any-return]

    def create_labelset(self, body: dict[str, Any]) -> dict[str, Any]:
        return self._call("POST", "/labelsets", json=body)  # type: ignore[no-any-return]

    def remove_labelset(self, name: str) -> None:
        self._call("DELETE", f"/labelsets/{name}")

    def import_labels(
        self,
        name: str,
        *,
        file: Path | None,
        fmt: str | None,
        source: str | None,
        body: dict[str, Any] | None,
    ) -> dict[str, Any]:
        """Upload (or ask for) the import, then wait for its job."""
        path = f"/labelsets/{name}/annotations"
        if file is not None:
            form = {"format": fmt or "loupe", **({"source": source} if source else {})}
            with file.open("rb") as fh:
                job = self._call("POST", path, data=form, files={"file": (file.name, fh)})
        else:
            job = self._call("POST", path, json=body or {})
        while job["state"] in ("queued", "running"):
            time.sleep(0.2)
            job = self._call("GET", f"/jobs/{job['id']}")
        return job  # type: ignore[no-any-return]

    def close(self) -> None:
        self.http.close()


def _error_from(resp: httpx.Response) -> errors.LoupeError:
    try:
        body = resp.json()
        kind, detail = str(body.get("error", "")), str(body.get("detail", resp.text))
    except ValueError:
        kind, detail = "", resp.text[:500] or f"HTTP {resp.status_code}"
    cls = getattr(errors, kind, None)
    if isinstance(cls, type) and issubclass(cls, errors.LoupeError) and cls is not errors.InvalidQuery:
        return cls(detail)
    exc = errors.LoupeError(detail)
    exc.status_code = resp.status_code
    return exc


def connect(settings: Settings) -> Client:
    url = running_server(settings)
    if url is not None:
        return RemoteClient(url)
    return LocalClient(settings)
