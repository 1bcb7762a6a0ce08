"""Reductions of streamed vectors: fitted on a bounded sample, then applied page by page.

The map's layout (2-d) and the clusters signal (UMAP to a few dimensions) both read the
index one page at a time. A `Streamed` reduction holds the first `fit` vectors it sees
(the index scrolls in id order and asset ids are hashes, so those are a uniform sample),
fits on them, and from then on reduces each batch as it arrives: memory is the sample
plus one batch of full vectors, whatever the catalog's size, and the fit costs the same
at 100k or 10M assets.

UMAP (umap-learn) is fitted with a fixed `random_state`, so the same vectors give the same
picture on every run; `transform` places the rest. It needs a few more points than its
neighbourhood size: below `UMAP_MIN_POINTS` the reduction is PCA (a handful of points has
no manifold to learn). umap-learn and numba cost seconds to import and compile, so they
are imported on first use, never at server start.
"""

from __future__ import annotations

import logging
import warnings
from typing import Any, Protocol

import numpy as np

log = logging.getLogger(__name__)

# Measured on the shared 2-core machine (benchmarks/RESULTS.md, "The map on UMAP"): the fit
# is a one-time, minute-scale cost past ~10,000 points while transform is linear in N; 20,000
# is the largest sample whose fit stayed near a minute under load.
UMAP_FIT_SAMPLE = 20_000
PCA_FIT_SAMPLE = 25_000
# Vectors per transform call: umap-learn runs 30 epochs on a batch of over 10,000, 100 below.
TRANSFORM_BATCH = 16_384
UMAP_MIN_POINTS = 16


class Reduction(Protocol):
    """Something fitted once on a sample and then applied to any number of batches."""

    name: str

    def fit(self, sample: np.ndarray) -> np.ndarray:
        """Fit on `sample` (n, d); returns the sample's own reduced coordinates (n, dims)."""
        ...

    def transform(self, batch: np.ndarray) -> np.ndarray:
        """Reduce a batch (m, d) the same way: (m, dims)."""
        ...


class PcaReduction:
    """PCA to `dims` components, each axis signed so its largest loading is positive.

    The signs make the same data give the same picture, never its mirror image. The
    covariance is taken of vectors shifted by their mean (in float64 sums): E[xxᵀ] - μμᵀ
    of unshifted unit vectors loses its small entries to rounding.
    """

    def __init__(self, dims: int = 2) -> None:
        self.dims = dims
        self.name = f"pca-{dims}" if dims != 2 else "pca"
        self.mean: np.ndarray | None = None
        self.axes: np.ndarray | None = None

    def fit(self, sample: np.ndarray) -> np.ndarray:
        x = np.asarray(sample, dtype=np.float32)
        mean = x.mean(axis=0, dtype=np.float64)
        centred = (x - mean).astype(np.float32)
        cov = (centred.T @ centred).astype(np.float64) / max(len(x), 1)
        eigenvalues, eigenvectors = np.linalg.eigh(cov)  # ascending order
        axes = eigenvectors[:, np.argsort(eigenvalues)[::-1][: self.dims]]
        if axes.shape[1] < self.dims:
            axes = np.pad(axes, ((0, 0), (0, self.dims - axes.shape[1])))
        signs = np.sign(axes[np.abs(axes).argmax(axis=0), np.arange(self.dims)])
        self.axes = (axes * np.where(signs == 0, 1.0, signs)).astype(np.float32)
        self.mean = mean.astype(np.float32)
        return self._apply(x)

    def transform(self, batch: np.ndarray) -> np.ndarray:
        return self._apply(batch)

    def _apply(self, batch: np.ndarray) -> np.ndarray:
        assert self.mean is not None and self.axes is not None, "fit first"
        return np.asarray((np.asarray(batch, np.float32) - self.mean) @ self.axes, dtype=np.float32)


class UmapReduction:
    """UMAP (cosine) to `dims` components, deterministic (`seed`); PCA below `UMAP_MIN_POINTS`."""

    def __init__(self, dims: int = 2, *, n_neighbors: int = 15, min_dist: float = 0.1, seed: int = 0) -> None:
        self.dims = dims
        self.n_neighbors = n_neighbors
        self.min_dist = min_dist
        self.seed = seed
        self.name = "umap" if dims == 2 else f"umap-{dims}"
        self._model: object | None = None
        self._pca: PcaReduction | None = None

    def fit(self, sample: np.ndarray) -> np.ndarray:
        x = np.asarray(sample, dtype=np.float32)
        if len(x) < UMAP_MIN_POINTS:
            self._pca = PcaReduction(self.dims)
            self.name = self._pca.name
            return self._pca.fit(x)
        umap = _umap()
        model = umap.UMAP(
            n_components=self.dims,
            n_neighbors=min(self.n_neighbors, len(x) - 1),
            min_dist=self.min_dist,
            metric="cosine",
            random_state=self.seed,
            n_jobs=1,  # a seed makes umap-learn single-threaded anyway; saying so silences its warning
        )
        with warnings.catch_warnings():
            # Spectral initialisation on a small or disconnected graph falls back to random (seeded).
            warnings.simplefilter("ignore", UserWarning)
            out = model.fit_transform(x)
        self._model = model
        return np.asarray(out, dtype=np.float32)

    def transform(self, batch: np.ndarray) -> np.ndarray:
        if self._pca is not None:
            return self._pca.transform(batch)
        assert self._model is not None, "fit first"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            out = self._model.transform(np.asarray(batch, dtype=np.float32))  # type: ignore[attr-defined]
        return np.asarray(out, dtype=np.float32)


# umap-learn's numba kernels that it compiles with `parallel=True` and no cache: every process
# compiled them again on its first layout (16 s of a 90-point fit and 7 s of its first transform
# here, minutes under load). Each of them loops over independent rows, and a seeded UMAP runs
# single-threaded anyway (n_jobs=1), so the same kernels compiled serially give the same numbers
# and can be cached on disk: the first layout of a later process takes ~1.5 s.
_UNCACHED_KERNELS = ("smooth_knn_dist", "compute_membership_strengths", "fast_knn_indices", "submatrix")
_umap_module: object | None = None


def _umap() -> Any:
    """umap-learn, imported on first use (numba: seconds), its parallel kernels made cached serial ones."""
    global _umap_module
    if _umap_module is None:
        import numba
        import umap
        import umap.umap_

        for name in _UNCACHED_KERNELS:
            kernel = getattr(umap.umap_, name, None)
            options = getattr(kernel, "targetoptions", None)
            if options is None or options.get("cache"):
                continue  # not a numba kernel (a newer umap-learn) or already cached
            options = {k: v for k, v in options.items() if k != "nopython"}  # njit implies it (and warns)
            serial = numba.njit(**{**options, "parallel": False, "cache": True})(kernel.py_func)  # type: ignore[union-attr]
            setattr(umap.umap_, name, serial)
        _umap_module = umap
    return _umap_module


class Streamed:
    """A reduction fitted on the first `fit` vectors added, then applied batch by batch.

    `add(page)` takes pages in scan order; `result()` is one row per vector added, in that
    order. At most `fit` + `batch` full vectors are held at any time.
    """

    def __init__(self, reduction: Reduction, *, fit: int, batch: int = TRANSFORM_BATCH) -> None:
        self.reduction = reduction
        self.fit = fit
        self.batch = batch
        self.fitted = 0  # vectors the reduction was fitted on (0 until it is)
        self._held: list[np.ndarray] = []  # the sample before the fit, a batch after it
        self._held_rows = 0
        self._out: list[np.ndarray] = []

    @property
    def ready(self) -> bool:
        return self.fitted > 0

    def add(self, page: np.ndarray) -> None:
        page = np.asarray(page, dtype=np.float32)
        if not len(page):
            return
        if not self.ready:
            take = min(len(page), self.fit - self._held_rows)
            self._hold(page[:take])
            if self._held_rows >= self.fit:
                self._fit()
            page = page[take:]
            if not len(page):
                return
        self._hold(page)
        if self._held_rows >= self.batch:
            self._flush()

    def result(self) -> np.ndarray:
        """Every added vector reduced, in order (fits on what it holds if the sample never filled)."""
        if not self.ready and self._held_rows:
            self._fit()
        self._flush()
        if not self._out:
            return np.zeros((0, getattr(self.reduction, "dims", 2)), np.float32)
        return np.concatenate(self._out)

    def _hold(self, rows: np.ndarray) -> None:
        if len(rows):
            self._held.append(rows)
            self._held_rows += len(rows)

    def _take(self) -> np.ndarray:
        rows = np.concatenate(self._held) if len(self._held) > 1 else self._held[0]
        self._held, self._held_rows = [], 0
        return rows

    def _fit(self) -> None:
        sample = self._take()
        log.info("reduce: fitting %s on %d vectors", self.reduction.name, len(sample))
        self._out.append(self.reduction.fit(sample))
        self.fitted = len(sample)

    def _flush(self) -> None:
        if self._held_rows:
            self._out.append(self.reduction.transform(self._take()))
