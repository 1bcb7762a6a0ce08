"""The signal maths against scikit-learn and scipy on the same vectors: kNN distances, the weighted
uniqueness, the normalisations, groups as connected components, and HDBSCAN's own labels."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from sklearn.cluster import HDBSCAN
from sklearn.neighbors import NearestNeighbors

from service.catalog.reduce import PcaReduction, Streamed
from service.signals import clusters, duplicates, scores
from service.signals.neighbours import NeighbourGraph

RNG = np.random.default_rng(4)


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _graph(vectors: np.ndarray, k: int) -> NeighbourGraph:
    """The graph the index would give, from scikit-learn's exact cosine kNN."""
    nn = NearestNeighbors(n_neighbors=k + 1, metric="cosine").fit(vectors)
    dist, idx = nn.kneighbors(vectors)
    ids = [f"a{i}" for i in range(len(vectors))]
    return NeighbourGraph(ids=ids, idx=idx[:, 1:], dist=dist[:, 1:].astype(np.float32))


def test_uniqueness_is_the_weighted_knn_distance_over_its_median() -> None:
    vectors = _unit(RNG.normal(size=(300, 12)))
    graph = _graph(vectors, 3)
    raw = scores.weighted_distance(graph.dist, scores.UNIQUENESS_WEIGHTS)
    # FiftyOne's published form: sum of weights x the three nearest distances.
    expected = graph.dist @ np.asarray(scores.UNIQUENESS_WEIGHTS) / sum(scores.UNIQUENESS_WEIGHTS)
    np.testing.assert_allclose(raw, expected, rtol=1e-5)
    median = scores.typical(raw)
    assert median == pytest.approx(float(np.median(expected)), rel=1e-5)
    u = scores.uniqueness(raw, median)
    assert np.all((u >= 0) & (u < 1))
    assert float(np.median(u)) == pytest.approx(0.5, abs=1e-3)  # the median asset scores 0.5
    assert np.argmax(u) == np.argmax(expected)


def test_normalised_scores_do_not_move_when_the_catalog_scale_does() -> None:
    vectors = RNG.normal(size=(200, 8))
    nn = NearestNeighbors(n_neighbors=11).fit(vectors)
    d1 = nn.kneighbors(vectors)[0][:, 1:]
    d2 = NearestNeighbors(n_neighbors=11).fit(vectors * 7.5).kneighbors(vectors * 7.5)[0][:, 1:]
    for fn in (scores.uniqueness, scores.outlier, scores.typicality):
        r1, r2 = scores.weighted_distance(d1), scores.weighted_distance(d2)
        np.testing.assert_allclose(fn(r1, scores.typical(r1)), fn(r2, scores.typical(r2)), rtol=1e-6)


def test_outlier_is_the_complement_of_the_exp_knn_score_and_missing_neighbours_count_as_far() -> None:
    dist = np.array([[0.1, 0.2], [0.3, np.inf], [np.inf, np.inf]], dtype=np.float32)
    raw = scores.weighted_distance(dist)
    np.testing.assert_allclose(raw[:2], [0.15, 0.3], rtol=1e-6)
    assert np.isnan(raw[2])
    out = scores.outlier(np.array([0.15, 0.3, np.inf]), 0.15)
    np.testing.assert_allclose(out, [1 - np.exp(-1), 1 - np.exp(-2), 1.0], rtol=1e-6)
    assert scores.uniqueness(np.array([np.inf]), 1.0)[0] == 1.0
    assert scores.typicality(np.array([np.inf]), 1.0)[0] == 0.0


def test_label_issue_from_the_vote_and_the_self_confidence() -> None:
    labels = ["a", "a", "a", "b"]
    idx = np.array([[1, 2], [0, 2], [0, 1], [0, 1]])
    dist = np.full((4, 2), 0.1, dtype=np.float32)
    vote = scores.neighbour_vote(labels, idx, dist, 0.1)
    np.testing.assert_allclose(vote, [1, 1, 1, 0])
    conf = [scores.self_confidence(lab, {"scores": {"a": 0.2, "b": 0.6}}, 2) for lab in labels]
    np.testing.assert_allclose(conf, [0.25, 0.25, 0.25, 0.75])
    issue = scores.label_issue(vote, conf)
    np.testing.assert_allclose(issue, [1 - 0.625, 1 - 0.625, 1 - 0.625, 1 - 0.375])
    # From label + score alone: the score when it agrees, the rest spread over the other classes.
    assert scores.self_confidence("a", {"label": "a", "score": 0.9}, 3) == pytest.approx(0.9)
    assert scores.self_confidence("b", {"label": "a", "score": 0.9}, 3) == pytest.approx(0.05)
    assert scores.self_confidence("b", None, 3) is None


def test_groups_are_scipys_connected_components_of_the_pairs() -> None:
    base = _unit(RNG.normal(size=(60, 16)))
    copies = _unit(base[:15] + 0.01 * RNG.normal(size=(15, 16)))
    vectors = np.concatenate([base, copies])
    graph = _graph(vectors, 4)
    pairs = duplicates.near_pairs(graph, 0.01)
    payloads = [{"width": 10 if i < 60 else 8, "height": 10} for i in range(len(vectors))]
    found = duplicates.groups(graph.ids, payloads, pairs)
    rows, cols = zip(*pairs, strict=True)
    n = len(vectors)
    adj = coo_matrix((np.ones(len(pairs)), (rows, cols)), shape=(n, n))
    count, labels = connected_components(adj, directed=False)
    expected = {}
    for i, lab in enumerate(labels):
        expected.setdefault(lab, set()).add(graph.ids[i])
    want = sorted(sorted(g) for g in expected.values() if len(g) > 1)
    assert sorted(sorted(g.ids) for g in found) == want
    assert len(found) == 15
    # The kept one is the larger original, not the 8 px copy.
    assert all(int(g.keep[1:]) < 60 for g in found)
    assert duplicates.exact_pairs(["x", None, "x", "y", "x"]) == [(0, 2), (0, 4)]


def test_clusters_equal_hdbscan_on_the_same_points_when_all_are_sampled() -> None:
    centres = RNG.normal(size=(4, 5)) * 10
    points = np.concatenate([c + RNG.normal(size=(40, 5)) for c in centres]).astype(np.float32)
    got = clusters.cluster(points, min_cluster_size=10)
    direct = HDBSCAN(min_cluster_size=10, copy=True).fit_predict(points)
    # Same partition (renumbered by size), same noise.
    assert np.array_equal(got < 0, direct < 0)
    pairs = {(int(a), int(b)) for a, b in zip(got, direct, strict=True) if a >= 0}
    assert len(pairs) == len({a for a, _ in pairs}) == len({b for _, b in pairs})
    # Sampled: the rest inherit their nearest sampled point's cluster.
    sampled = clusters.cluster(points, min_cluster_size=5, sample=80)
    assert len(set(sampled[sampled >= 0].tolist())) == 4


def test_streamed_pca_is_scikit_learns_pca_fitted_on_the_first_vectors() -> None:
    from sklearn.decomposition import PCA

    vectors = RNG.normal(size=(500, 20)).astype(np.float32)
    pca = Streamed(PcaReduction(4), fit=200, batch=100)
    for start in range(0, 500, 64):
        pca.add(vectors[start : start + 64])
    reference = PCA(n_components=4, random_state=0).fit(vectors[:200]).transform(vectors)
    np.testing.assert_allclose(np.abs(pca.result()), np.abs(reference), rtol=1e-3, atol=1e-3)


def _planted(groups: int = 6, per: int = 150, dim: int = 64, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Well-separated groups of unit vectors around a shared direction (as CLIP vectors are), shuffled."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=dim) * 2 + rng.normal(size=(groups, dim))
    truth = np.repeat(np.arange(groups), per)
    x = _unit(centres[truth] + rng.normal(scale=0.15, size=(groups * per, dim)))
    order = rng.permutation(len(x))  # the index scrolls in (hashed) id order: groups interleave
    return x[order], truth[order]


def _umap_clusters(x: np.ndarray, *, fit: int) -> tuple[np.ndarray, str]:
    reduced = clusters.reduction(fit=fit)
    for start in range(0, len(x), 128):  # pages, as the scan gives them
        reduced.add(x[start : start + 128])
    return clusters.cluster(reduced.result(), min_cluster_size=10), reduced.reduction.name


def test_clusters_on_umap_find_each_planted_group_deterministically() -> None:
    from sklearn.metrics import adjusted_rand_score

    x, truth = _planted()
    # Fitted on 400 of the 900, the other 500 placed by transform.
    labels, name = _umap_clusters(x, fit=400)
    assert name == f"umap-{clusters.DIMS}"
    assert adjusted_rand_score(truth, labels) >= 0.95, adjusted_rand_score(truth, labels)
    assert len(set(labels[labels >= 0].tolist())) == 6 and np.mean(labels < 0) < 0.05
    again, _ = _umap_clusters(x, fit=400)
    np.testing.assert_array_equal(labels, again)


def test_clusters_of_a_handful_of_points_use_pca() -> None:
    x, _ = _planted(groups=2, per=5)
    labels, name = _umap_clusters(x, fit=400)
    assert name == f"pca-{clusters.DIMS}" and labels.shape == (10,)
