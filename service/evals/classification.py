"""Classification metrics of one set of (truth, prediction) pairs, computed by scikit-learn.

Labels reach scikit-learn as integer codes in sorted label order: on 100,000 pairs its checks
of string arrays (sorting Python objects) cost seconds, integers milliseconds, and since the
codes keep the labels' order every number is the one the strings give.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support

# A prediction that named no label (an abstention) is its own column of the confusion matrix.
NO_LABEL = "(none)"


def _encode(truth: Sequence[str], predicted: Sequence[str]) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
    code = {label: i for i, label in enumerate(sorted(set(truth) | set(predicted)))}
    t = np.fromiter(map(code.__getitem__, truth), dtype=np.int64, count=len(truth))
    p = np.fromiter(map(code.__getitem__, predicted), dtype=np.int64, count=len(predicted))
    return t, p, code


def encode(truth: Sequence[str], predicted: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Both sides as integer codes in sorted label order, for `coded_metrics` of many subsets."""
    t, p, _ = _encode(truth, predicted)
    return t, p


@dataclass
class Coded:
    """(truth, prediction) pairs coded once: `t`, `p` index `names` (sorted label order)."""

    t: np.ndarray
    p: np.ndarray
    names: list[str]

    @classmethod
    def of(cls, truth: Sequence[str], predicted: Sequence[str]) -> Coded:
        t, p, code = _encode(truth, predicted)
        return cls(t=t, p=p, names=list(code))

    def codes(self, labels: Sequence[str]) -> list[int]:
        at = {name: i for i, name in enumerate(self.names)}
        return [at[label] for label in labels]


def metrics(truth: Sequence[str], predicted: Sequence[str]) -> dict[str, float | None]:
    """`accuracy`, `macro_f1`, `weighted_f1` over the labels either side names (sklearn's default)."""
    if not truth:
        return {"accuracy": None, "macro_f1": None, "weighted_f1": None}
    return coded_metrics(*encode(truth, predicted))


def coded_metrics(t: np.ndarray, p: np.ndarray) -> dict[str, float | None]:
    """`metrics` of pairs already coded by `encode` (any subset of them: the codes keep the
    labels' order, so each number is the one the strings give)."""
    if not len(t):
        return {"accuracy": None, "macro_f1": None, "weighted_f1": None}
    return {
        "accuracy": float(accuracy_score(t, p)),
        "macro_f1": float(f1_score(t, p, average="macro", zero_division=0)),
        "weighted_f1": float(f1_score(t, p, average="weighted", zero_division=0)),
    }


def per_class(truth: Sequence[str], predicted: Sequence[str], labels: Sequence[str]) -> dict[str, Any]:
    """precision, recall, f1 and support of each label (zero where a label is never predicted)."""
    if not truth:
        return {}
    return coded_per_class(Coded.of(truth, predicted), labels)


def coded_per_class(pairs: Coded, labels: Sequence[str]) -> dict[str, Any]:
    """`per_class` of pairs already coded."""
    if not len(pairs.t):
        return {}
    precision, recall, f1, support = precision_recall_fscore_support(
        pairs.t, pairs.p, labels=pairs.codes(labels), zero_division=0
    )
    return {
        label: {
            "precision": float(precision[i]),
            "recall": float(recall[i]),
            "f1": float(f1[i]),
            "support": int(support[i]),
        }
        for i, label in enumerate(labels)
    }


def confusion(truth: Sequence[str], predicted: Sequence[str], labels: Sequence[str]) -> list[list[int]]:
    """Rows: the true label, columns: the predicted one, both in the order of `labels`."""
    if not truth:
        return [[0] * len(labels) for _ in labels]
    return coded_confusion(Coded.of(truth, predicted), labels)


def coded_confusion(pairs: Coded, labels: Sequence[str]) -> list[list[int]]:
    """`confusion` of pairs already coded."""
    if not len(pairs.t):
        return [[0] * len(labels) for _ in labels]
    matrix = confusion_matrix(pairs.t, pairs.p, labels=pairs.codes(labels))
    return [[int(v) for v in row] for row in matrix]


def label_order(truth: Sequence[str], predicted: Sequence[str]) -> list[str]:
    """The labels of the matrix and the per-class table: those seen on either side, sorted as
    scikit-learn sorts them, the abstention column last. A declared class that neither side
    uses is left out, as scikit-learn's averages leave it out."""
    return coded_label_order(set(truth) | set(predicted))


def coded_label_order(seen: Collection[str]) -> list[str]:
    """`label_order` of the labels seen on either side (a `Coded`'s `names`)."""
    names = set(seen)
    ordered = sorted(names - {NO_LABEL})
    return [*ordered, NO_LABEL] if NO_LABEL in names else ordered
