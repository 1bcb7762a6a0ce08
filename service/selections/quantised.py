"""Farthest-first's distance update on an int8 copy of the pool, each pick checked on the exact vectors.

Each pick lowers every candidate's distance to its nearest pick, d_i = min(d_i, |x_i - y|):
plainly one pool x dim float32 product per pick (1,000,000 x 512: 2 GB read, ~0.2 s), so
1,000 picks from 1M took ~220 s. Here the pool is also held as int8 codes, one scale per
dimension (x_d ~ c_d / scale_d, scale_d = 127 / max |x_d|): a quarter of the bytes, read by a
compiled kernel fused with the min (numba, on two threads, each half of the rows).

    |x - y|^2 = |x|^2 + |y|^2 - 2 x.y,   x.y ~ sum_d c_d (y_d / scale_d)

The norms are the exact ones and y is the pick's exact vector: only x is rounded, by at
most half a step per dimension, so the dot's error has standard deviation
sqrt(sum_d y_d^2 / scale_d^2 / 12) (a few 1e-4 for unit 512-d vectors). The seeds' distances
are computed exactly beforehand and kept.

So each d_i is known to within a small relative error rho. Before a pick, every open candidate
whose approximate score w * d**b is within the band that error allows of the best one (at most
RESCORE of them, the best first) is scored on its exact distance (to the seeds, kept, and to
every pick so far, from the float32 vectors; kept too, so a candidate seen again is compared
with the newer picks only), and the best exact score is the pick; those
candidates keep their exact distance. The picks are then the exact greedy's whenever the
errors stay inside the band (6 standard deviations) and the band holds no more than RESCORE:
benchmarks/RESULTS.md measures how often that is so (and the covering radius) at 1,000,000.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np

CHUNK = 16_384  # rows quantised at a time
RESCORE = 256  # candidates re-scored exactly per pick, at most
SIGMAS = 6.0  # the band: this many standard deviations of the dot's rounding error
THREADS = 2


@numba.njit(nogil=True, cache=True, fastmath=True)
def _lower(codes, sq, y, ysq, dist, lo, hi):  # type: ignore[no-untyped-def]
    """dist[r] = min(dist[r], |x_r - y|) for rows lo..hi, x_r from its int8 codes."""
    d = codes.shape[1]
    for r in range(lo, hi):
        acc = np.float32(0.0)
        for j in range(d):
            acc += np.float32(codes[r, j]) * y[j]
        d2 = sq[r] + ysq - np.float32(2.0) * acc
        near = np.sqrt(max(d2, np.float32(0.0)))
        if near < dist[r]:
            dist[r] = near


@numba.njit(nogil=True, cache=True)
def _quantise(x, scale, out):  # type: ignore[no-untyped-def]
    for r in range(x.shape[0]):
        for j in range(x.shape[1]):
            v = round(x[r, j] * scale[j])
            out[r, j] = min(127.0, max(-127.0, v))


class QuantisedDistances:
    """Each candidate's distance to its nearest seed or pick (`dist`, in place), on int8 codes."""

    def __init__(self, vectors: np.ndarray, sq: np.ndarray, dist: np.ndarray) -> None:
        self.vectors, self.sq, self.dist = vectors, sq, dist
        # Exact distances, kept for the candidates re-scored: to the seeds (never approximated)
        # and to the first `upto` picks, so a candidate seen again is compared with the new picks only
        self.known = dist.copy()
        self.upto = np.zeros(len(vectors), dtype=np.int32)
        top = np.zeros(vectors.shape[1], dtype=np.float32)
        for at in range(0, len(vectors), CHUNK):
            np.maximum(top, np.abs(vectors[at : at + CHUNK]).max(axis=0), out=top)
        self.scale = (127.0 / np.maximum(top, 1e-30)).astype(np.float32)
        self.codes = np.empty(vectors.shape, dtype=np.int8)
        for at in range(0, len(vectors), CHUNK):
            _quantise(vectors[at : at + CHUNK], self.scale, self.codes[at : at + CHUNK])
        self.picks: list[int] = []
        self.norm2 = 0.0  # the largest squared norm of a pick (the dot's error grows with it)
        self.step2 = float(np.mean(1.0 / self.scale.astype(np.float64) ** 2))
        self.bands: list[int] = []  # per pick, the candidates its band held (measurements)
        self.moved = 0  # picks that the exact re-scoring changed (measurements)
        threads = max(1, min(THREADS, os.cpu_count() or 1))
        cuts = np.linspace(0, len(vectors), threads + 1).astype(np.int64)
        self.parts = list(zip(cuts[:-1].tolist(), cuts[1:].tolist(), strict=True))
        self.pool = ThreadPoolExecutor(threads) if threads > 1 else None

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown()

    def update(self, i: int) -> None:
        y = (self.vectors[i] / self.scale).astype(np.float32)
        args = (self.codes, self.sq, y, self.sq[i], self.dist)
        if self.pool is None:
            _lower(*args, 0, len(self.dist))
        else:
            list(self.pool.map(lambda part: _lower(*args, *part), self.parts))
        self.dist[i] = 0.0  # the pick itself, whatever its codes' rounding
        self.picks.append(i)
        self.norm2 = max(self.norm2, float(self.sq[i]))

    def choose(self, masked: np.ndarray, i: int, *, weight: np.ndarray, diversity: float) -> int:
        """The exact best among the candidates near the approximate best i (masked: w * d**b on
        open candidates, -1 elsewhere)."""
        best = float(masked[i])
        if best <= 0.0 or not self.picks:
            return i  # nothing placed by a pick yet: the distances are the seeds', exact
        rho = self._error(float(self.dist[i]))
        floor = best * ((1.0 - rho) / (1.0 + rho)) ** diversity if rho < 1.0 else 0.0
        cand = np.flatnonzero(masked >= floor)
        if len(cand) > RESCORE:
            cand = np.sort(cand[np.argpartition(-masked[cand], RESCORE)[:RESCORE]])
        self.bands.append(len(cand))
        exact = self.exact(cand)
        self.dist[cand] = exact
        score = weight[cand] * np.power(exact, diversity)
        pick = int(cand[int(np.argmax(score))])  # the first of equals, as the plain loop's argmax
        self.moved += pick != i
        return pick

    def exact(self, rows: np.ndarray) -> np.ndarray:
        """The float32 distance of each of rows to its nearest seed or pick."""
        since = int(self.upto[rows].min()) if len(rows) else len(self.picks)
        picks = np.asarray(self.picks[since:], dtype=np.int64)
        if len(picks):
            x, p = self.vectors[rows], self.vectors[picks]
            d2 = self.sq[rows][:, None] + self.sq[picks][None, :] - 2.0 * (x @ p.T)
            near = np.sqrt(np.maximum(d2, 0.0)).min(axis=1).astype(np.float32)
            self.known[rows] = np.minimum(self.known[rows], near)
            self.upto[rows] = len(self.picks)
        return self.known[rows]

    def _error(self, d: float) -> float:
        """The relative error of a distance near d: SIGMAS deviations of the dot's rounding."""
        dot = SIGMAS * np.sqrt(self.norm2 * self.step2 / 12.0)
        return float(dot / max(d * d, 1e-12))  # d(d) = d(x.y) / d
