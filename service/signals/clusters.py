"""Clusters: HDBSCAN (scikit-learn) on a PCA reduction of the vectors, fitted on a sample.

UMAP is the planned reduction (it keeps local structure that PCA smears) once umap-learn
is a dependency; until then the vectors are reduced by PCA to `DIMS` components, fitted
on the first `FIT` vectors of the scan (streamed, so memory is n x DIMS, not n x dim).
HDBSCAN runs on at most `SAMPLE` reduced points (evenly spaced through the scan: its
cost grows faster than linearly); every other asset takes the cluster of its nearest
sampled point in the reduced space (a KD-tree), or -1 (noise) when that point is noise
or farther than the sample's own typical core distance allows. `min_cluster_size`
(the request's `k`, default 10) is HDBSCAN's smallest cluster.
"""

from __future__ import annotations

import numpy as np
from sklearn.cluster import HDBSCAN
from sklearn.decomposition import PCA
from sklearn.neighbors import NearestNeighbors

DIMS = 16
FIT = 20_000
SAMPLE = 20_000
MIN_CLUSTER_SIZE = 10


class StreamedPCA:
    """PCA fitted on the first `fit` vectors seen, then applied page by page."""

    def __init__(self, *, dims: int = DIMS, fit: int = FIT) -> None:
        self.dims = dims
        self.fit = fit
        self._held: list[np.ndarray] = []
        self._pca: PCA | None = None
        self._pending: list[np.ndarray] = []

    def add(self, page: np.ndarray) -> None:
        if self._pca is None:
            self._held.append(page)
            if sum(len(p) for p in self._held) >= self.fit:
                self._fit()
        else:
            self._pending.append(self._pca.transform(page).astype(np.float32))

    def _fit(self) -> None:
        held = np.concatenate(self._held)
        dims = max(1, min(self.dims, held.shape[0], held.shape[1]))
        self._pca = PCA(n_components=dims, random_state=0).fit(held)
        self._pending = [self._pca.transform(p).astype(np.float32) for p in self._held]
        self._held = []

    def result(self) -> np.ndarray:
        if self._pca is None:
            if not self._held:
                return np.zeros((0, self.dims), dtype=np.float32)
            self._fit()
        return np.concatenate(self._pending) if self._pending else np.zeros((0, self.dims), np.float32)


def cluster(
    reduced: np.ndarray, *, min_cluster_size: int = MIN_CLUSTER_SIZE, sample: int = SAMPLE
) -> np.ndarray:
    """One integer cluster per row of `reduced` (-1 = noise), clusters numbered largest first."""
    n = reduced.shape[0]
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    if n < max(2, min_cluster_size):
        return np.full(n, -1, dtype=np.int64)
    picked = np.linspace(0, n - 1, num=min(n, sample)).astype(np.int64)
    picked = np.unique(picked)
    model = HDBSCAN(min_cluster_size=min_cluster_size, copy=True)
    sampled = model.fit_predict(reduced[picked])
    labels = np.full(n, -1, dtype=np.int64)
    labels[picked] = sampled
    rest = np.setdiff1d(np.arange(n), picked)
    if rest.size:
        nn = NearestNeighbors(n_neighbors=1).fit(reduced[picked])
        dist, nearest = nn.kneighbors(reduced[rest])
        inherited = sampled[nearest[:, 0]]
        # Farther from the sample than nearly every sampled point is from its own nearest: noise.
        own = NearestNeighbors(n_neighbors=2).fit(reduced[picked]).kneighbors(reduced[picked])[0][:, 1]
        limit = float(np.quantile(own, 0.99)) * 2 if own.size else np.inf
        labels[rest] = np.where(dist[:, 0] <= limit, inherited, -1)
    return _by_size(labels)


def _by_size(labels: np.ndarray) -> np.ndarray:
    """Renumber clusters 0, 1, ... from the largest; noise stays -1."""
    found, counts = np.unique(labels[labels >= 0], return_counts=True)
    order = found[np.argsort(-counts, kind="stable")]
    mapping = {int(old): new for new, old in enumerate(order)}
    return np.asarray([mapping.get(int(v), -1) for v in labels], dtype=np.int64)
