"""The detection confusion matrix (class-blind matching at the IoU, "(none)" for what is left) on
cases counted by hand, and its consistency with COCO's per-class tp/fp/fn on synthetic scenes."""

from __future__ import annotations

import json
from typing import Any

import pytest

from service.evals.confusion import NONE, cell_key, confusion


def box(label: str, x: float, y: float, w: float, h: float, score: float | None = None, **extra: Any) -> dict:
    out: dict = {"label": label, "bbox": [x, y, w, h], **extra}
    if score is not None:
        out["score"] = score
    return out


PAIRS = [
    # 1: A found; B found but called C (class-blind match); a stray A.
    (
        [box("A", 0, 0, 10, 10), box("B", 20, 20, 10, 10)],
        [box("A", 0, 0, 10, 10, 0.9), box("C", 20, 20, 10, 10, 0.8), box("A", 50, 50, 5, 5, 0.3)],
    ),
    # 2: B missed; a B far from it.
    ([box("B", 0, 0, 10, 10)], [box("B", 40, 40, 10, 10, 0.6)]),
    # 3: the higher score takes the box first, though the other overlaps it more: (A, B), then (none, A).
    ([box("A", 0, 0, 10, 10)], [box("A", 0, 0, 10, 10, 0.9), box("B", 1, 1, 10, 10, 0.95)]),
    # 4: a crowd region of A sets its own class's detection aside, not another class's.
    (
        [box("A", 0, 0, 100, 100, iscrowd=True)],
        [box("A", 10, 10, 10, 10, 0.9), box("B", 10, 10, 10, 10, 0.9)],
    ),
    # 5: an overlap under the IoU (5x10 of 10x10 and 10x10: 50/150 = 0.33) is no match.
    ([box("C", 0, 0, 10, 10)], [box("C", 5, 0, 10, 10)]),
]


def test_a_hand_counted_matrix():
    got = confusion(PAIRS, iou=0.5, classes=["A", "B", "C"])
    assert got.labels == ["A", "B", "C", NONE]
    assert got.matrix == [
        # pred: A  B  C  (none)
        [1, 1, 0, 0],  # gt A: image 1 right, image 3 taken by B
        [0, 0, 1, 1],  # gt B: called C in 1, missed in 2
        [0, 0, 0, 1],  # gt C: image 5's overlap is too small
        [2, 2, 1, 0],  # no gt: the stray A (1), the far B (2), the late A (3), B on the crowd (4), C (5)
    ]
    assert got.cells[0] == sorted([cell_key("A", "A"), cell_key("B", "C"), cell_key(NONE, "A")])
    assert got.cells[3] == [cell_key(NONE, "B")]
    assert json.loads(got.cells[2][0]) in (["A", "B"], [NONE, "A"])
    # At IoU 0.3, image 5's detection matches its box.
    assert confusion(PAIRS[4:], iou=0.3, classes=["C"]).matrix == [[1, 0], [0, 0]]


def test_no_boxes_and_no_detections():
    got = confusion([([], []), ([box("A", 0, 0, 4, 4)], [])], iou=0.5, classes=["A"])
    assert got.matrix == [[0, 1], [0, 0]] and got.cells == [[], [cell_key("A", NONE)]]


@pytest.mark.parametrize("iou", [0.5, 0.75])
def test_rows_and_columns_add_up_to_the_coco_counts(iou):
    from service.evals import detection
    from tests.unit.evals import scenes

    truth = scenes.scene_boxes(80)
    pred = scenes.predict_boxes(truth, seed=2, drop=0.25)
    data = detection.coco_data(list(zip(truth, pred, strict=True)))
    _, per_class = detection.matches(data, iou=iou)
    got = confusion(list(zip(truth, pred, strict=True)), iou=iou, classes=data.classes)
    assert got.labels == [*data.classes, NONE]
    for k, name in enumerate(data.classes):
        c = per_class[name]
        assert sum(got.matrix[k]) == c.tp + c.fn, name  # every box of the class, once
        assert sum(row[k] for row in got.matrix) == c.tp + c.fp, name  # every detection of it, once
        assert got.matrix[k][k] <= c.tp
    off = sum(got.matrix[i][j] for i in range(len(data.classes)) for j in range(len(data.classes)) if i != j)
    assert off > 0  # the predictor's wrong names show as class confusions, not only as fp + fn
