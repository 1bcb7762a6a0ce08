"""Label sets and the import spool in the state store (their tables live in service/state.py)."""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from service.errors import LabelSetExists, LabelSetNotFound
from service.labels.schemas import LabelSetCreate, LabelSetPublic
from service.state import LabelImportBatchRow, LabelSetRow, StateStore, utcnow
from service.timestamps import rfc3339


class LabelSetStore:
    """Typed access to the label-set tables; every method runs in its own transaction."""

    def __init__(self, state: StateStore) -> None:
        self.state = state

    def create(self, body: LabelSetCreate) -> LabelSetRow:
        row = LabelSetRow(
            name=body.name,
            role=body.role,
            task=body.task,
            classes=list(body.classes or []),
            classes_declared=body.classes is not None,
            model=body.model,
            assets=0,
            created_at=utcnow(),
            updated_at=utcnow(),
        )
        try:
            with self.state.session() as s:
                s.add(row)
        except IntegrityError:
            raise LabelSetExists(
                f"a label set named {body.name!r} exists already; import into it, "
                "remove it first (DELETE /api/v1/labelsets/{name}) or pick another name"
            ) from None
        return row

    def get(self, name: str) -> LabelSetRow:
        with self.state.session() as s:
            row = s.get(LabelSetRow, name)
        if row is None:
            raise LabelSetNotFound(
                f"no label set named {name!r}; create it with POST /api/v1/labelsets (GET lists them)"
            )
        return row

    def find(self, name: str) -> LabelSetRow | None:
        with self.state.session() as s:
            return s.get(LabelSetRow, name)

    def all(self) -> list[LabelSetRow]:
        with self.state.session() as s:
            return list(s.scalars(select(LabelSetRow).order_by(LabelSetRow.name)))

    def remove(self, name: str) -> None:
        with self.state.session() as s:
            row = s.get(LabelSetRow, name)
            if row is None:
                raise LabelSetNotFound(f"no label set named {name!r}")
            s.delete(row)

    def imported(self, name: str, *, job_id: str, classes: list[str], assets: int) -> None:
        """After an import: the classes it used join the learned ones; the asset count is refreshed."""
        with self.state.session() as s:
            row = s.get(LabelSetRow, name, with_for_update=True)
            if row is None:
                return
            if not row.classes_declared:
                row.classes = sorted(set(row.classes or []) | set(classes))
            row.assets, row.last_job_id, row.updated_at = assets, job_id, utcnow()

    # -- the import spool ------------------------------------------------

    def put_batches(self, job_id: str, batches: list[list[Any]]) -> None:
        with self.state.session() as s:
            s.add_all(LabelImportBatchRow(job_id=job_id, seq=i, items=b) for i, b in enumerate(batches))
        _ready.put(job_id, batches)

    def batch(self, job_id: str, seq: int) -> list[Any] | None:
        held = _ready.get(job_id, seq)
        if held is not None:
            return held
        with self.state.session() as s:
            row = s.get(LabelImportBatchRow, (job_id, seq))
            return None if row is None else list(row.items)

    def drop_batches(self, job_id: str) -> None:
        _ready.drop(job_id)
        with self.state.session() as s:
            s.execute(delete(LabelImportBatchRow).where(LabelImportBatchRow.job_id == job_id))


class _Ready:
    """The batches this process spooled last, kept in memory until their job ends.

    The state store's copy is the one that counts (any replica's runner may claim the job, and
    a restarted one resumes from it); when the job runs in the process that spooled it, as it
    usually does, its batches come from here instead of being decoded again (a JSON round trip
    of every value: ~1.5 s of CPU at 100,000 predictions with probability vectors). Holds the
    newest `KEEP` spools only, so batches another process took over are not kept for long.
    """

    KEEP = 2

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._jobs: OrderedDict[str, list[list[Any]]] = OrderedDict()

    def put(self, job_id: str, batches: list[list[Any]]) -> None:
        with self._lock:
            self._jobs[job_id] = batches
            while len(self._jobs) > self.KEEP:
                self._jobs.popitem(last=False)

    def get(self, job_id: str, seq: int) -> list[Any] | None:
        with self._lock:
            batches = self._jobs.get(job_id)
        return batches[seq] if batches is not None and 0 <= seq < len(batches) else None

    def drop(self, job_id: str) -> None:
        with self._lock:
            self._jobs.pop(job_id, None)


_ready = _Ready()


def set_public(row: LabelSetRow) -> LabelSetPublic:
    return LabelSetPublic(
        name=row.name,
        role=row.role,  # type: ignore[arg-type]
        task=row.task,  # type: ignore[arg-type]
        classes=list(row.classes or []),
        classes_declared=bool(row.classes_declared),
        model=row.model,
        assets=int(row.assets or 0),
        created_at=rfc3339(row.created_at),
        updated_at=rfc3339(row.updated_at),
        last_job_id=row.last_job_id,
    )
