"""The fields label sets and evaluations write on assets, as GET /fields lists them.

Their payload indexes outlive a removed set (an index is cheap to keep and re-created on
the next import), so the list comes from the sets and evaluations that exist, not from the
index: a filter control for a set that is gone would only ever match nothing.
"""

from __future__ import annotations

from service.evals.outcomes import FIELDS, root
from service.evals.store import EvaluationStore
from service.index.base import FieldType
from service.labels.payload import public_fields
from service.labels.store import LabelSetStore
from service.state import StateStore

RECENT_EVALUATIONS = 50  # the newest evaluations' outcome fields; older ones stay filterable by name


def model_fields(state: StateStore) -> dict[str, FieldType]:
    """Each label set's fields (by its task and role), then each succeeded evaluation's outcomes."""
    out: dict[str, FieldType] = {}
    for s in LabelSetStore(state).all():
        out.update(public_fields(s.name, task=s.task, role=s.role))
    for row in EvaluationStore(state).list(limit=RECENT_EVALUATIONS):
        if row.state == "succeeded":
            out.update({f"{root(row.id)}.{leaf}": kind for leaf, kind in FIELDS[row.task].items()})
    return out
