"""Clusters: HDBSCAN (scikit-learn) on a UMAP reduction of the vectors, fitted on a sample.

As umap-learn's "Using UMAP for Clustering" advises, the reduction is for density, not
for the eye: `DIMS` = 10 components (HDBSCAN suffers the curse of dimensionality on the
raw 512, and 2-d throws structure away), `N_NEIGHBORS` = 30 (twice the map's, so noise
does not split clusters) and `min_dist` = 0 (points packed densely, gaps between clusters
clean). It is fitted on the first `FIT` vectors of the scan and places the rest by
`transform`, batch by batch (`service/catalog/reduce.py`: memory is the sample plus one
batch of full vectors; n x DIMS floats are kept), with a fixed seed, so a rerun gives the
same clusters. Below a handful of points UMAP has nothing to learn and PCA reduces instead.
HDBSCAN runs on at most `SAMPLE` reduced points (evenly spaced through the scan: its
cost grows faster than linearly); every other asset takes the cluster of its nearest
sampled point in the reduced space (a KD-tree), or -1 (noise) when that point is noise
or farther than the sample's own typical core distance allows. `min_cluster_size`
(the request's `k`, default 10) is HDBSCAN's smallest cluster.
"""

from __future__ import annotations

import numpy as np
from sklearn.cluster import HDBSCAN
from sklearn.neighbors import NearestNeighbors

from service.catalog.reduce import Streamed, UmapReduction

DIMS = 10
N_NEIGHBORS = 30
FIT = 20_000
SAMPLE = 20_000
MIN_CLUSTER_SIZE = 10


def reduction(*, fit: int = FIT, seed: int = 0) -> Streamed:
    """The streamed reduction the clusters are found in (`.reduction.name` says which it became)."""
    return Streamed(UmapReduction(DIMS, n_neighbors=N_NEIGHBORS, min_dist=0.0, seed=seed), fit=fit)


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
