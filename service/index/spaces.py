"""Vector spaces as the index holds them: a space name resolved to its named vector, and vectors checked.

The one place that turns a request's `space` into (vector name, dimension, distance):
search, the map, signals, selections and labeling functions call `resolve_space`, and
check the vectors they are given with `check_vector` / `check_vectors`.
"""

from __future__ import annotations

import re

import numpy as np

from service.errors import InvalidQuery
from service.index.base import Distance, VectorIndex, VectorSpec

# User space names: no dot, so they never collide with an encoder's vector name (which has one).
SPACE_NAME = r"^[a-z0-9][a-z0-9_-]{0,63}$"
_NAME = re.compile(SPACE_NAME)


def valid_space_name(name: str) -> bool:
    return bool(_NAME.match(name))


def resolve_space(index: VectorIndex, name: str | None, *, path: str = "space") -> VectorSpec:
    """The named vector a request's `space` means; None (or the encoder's name) is the encoder's.

    Raises:
        InvalidQuery: no such space (the detail lists the spaces there are).
    """
    if name is None or name == index.vector_name:
        return index.vector_specs().get(index.vector_name) or VectorSpec(index.vector_name, index.dim)
    specs = index.vector_specs()
    if name not in specs:
        known = ", ".join(sorted(specs)) or "none"
        raise InvalidQuery(
            f"no vector space named {name!r}; spaces: {known} (GET /api/v1/vector-spaces lists them)",
            path=path,
        )
    return specs[name]


def is_encoder_space(index: VectorIndex, spec: VectorSpec) -> bool:
    return spec.name == index.vector_name


def check_vector(values: object, spec: VectorSpec, *, path: str) -> np.ndarray:
    """One vector for `spec` as float32: the right length, finite, and not zero under cosine.

    Raises:
        InvalidQuery: naming `path` and what is wrong.
    """
    try:
        array = np.asarray(values, dtype=np.float32)
    except (TypeError, ValueError):
        raise InvalidQuery("is not a list of numbers", path=path) from None
    if array.ndim != 1:
        raise InvalidQuery("must be a flat list of numbers", path=path)
    problem = vector_problem(array, spec)
    if problem is not None:
        raise InvalidQuery(problem, path=path)
    return array


def vector_problem(array: np.ndarray, spec: VectorSpec) -> str | None:
    """What is wrong with one vector for `spec`, or None."""
    if array.shape[-1] != spec.dim:
        return f"has {array.shape[-1]} components; space {spec.name!r} has dimension {spec.dim}"
    if not np.isfinite(array).all():
        return "has NaN or infinite components"
    if spec.distance is Distance.cosine and not np.any(array):
        return f"is all zeros, which has no direction under the cosine distance of {spec.name!r}"
    return None


def rows_with_problems(matrix: np.ndarray, spec: VectorSpec) -> tuple[np.ndarray, np.ndarray]:
    """Row numbers of a (n, dim) matrix with NaN/inf components, and of all-zero rows under cosine.

    Vectorised: a million rows of 512 take about a second.
    """
    bad_values = np.flatnonzero(~np.isfinite(matrix).all(axis=1))
    if spec.distance is not Distance.cosine:
        return bad_values, np.empty(0, dtype=np.int64)
    return bad_values, np.flatnonzero(~matrix.any(axis=1))
