"""The detection confusion matrix equals FiftyOne's on the same boxes: `evaluate_detections(...,
method="coco", classwise=False)` then `confusion_matrix(include_missing=True)`, at two IoUs.

FiftyOne runs in the benchmarks' own venv (never in Loupe's: it pins its own dependencies); the
test skips, saying how to make it, where that venv is missing.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from benchmarks.common import FIFTYONE_VENV
from service.evals import detection
from service.evals.confusion import confusion
from tests.unit.evals import scenes

PYTHON = FIFTYONE_VENV / "bin" / "python"
IOUS = (0.5, 0.75)

pytestmark = [
    pytest.mark.slow,  # FiftyOne starts its own MongoDB: about a minute on a loaded 2-core machine
    pytest.mark.skipif(
        not PYTHON.exists(),
        reason=f"FiftyOne's venv {FIFTYONE_VENV} is missing (make bench ARGS='--only diagnostics' makes it)",
    ),
]

# Runs in FiftyOne's venv: stdlib + fiftyone. Boxes are pixels; any common scale keeps every IoU.
WORKER = """
import json, sys
import fiftyone as fo

d = json.load(open(sys.argv[1]))
S = 1000.0

def det(b, score):
    x, y, w, h = b["bbox"]
    kw = {"confidence": b["score"]} if score and b.get("score") is not None else {}
    return fo.Detection(label=b["label"], bounding_box=[x / S, y / S, w / S, h / S], **kw)

ds = fo.Dataset()
ds.add_samples(
    [fo.Sample(filepath=f"/nonexistent/{i}.png", gt=fo.Detections(detections=[det(b, False) for b in t]),
               pred=fo.Detections(detections=[det(b, True) for b in p]))
     for i, (t, p) in enumerate(zip(d["truth"], d["pred"]))],
    progress=False,
)
out = {}
for iou in d["ious"]:
    res = ds.evaluate_detections("pred", gt_field="gt", eval_key=f"e{int(iou * 100)}", method="coco",
                                 iou=iou, classwise=False)
    out[str(iou)] = res.confusion_matrix(classes=d["classes"], include_missing=True).tolist()
ds.delete()
print(json.dumps(out))
"""


def test_the_matrix_equals_fiftyones(tmp_path: Path) -> None:
    truth = scenes.scene_boxes(150)
    pred = scenes.predict_boxes(truth, seed=2, drop=0.25)
    pairs = list(zip(truth, pred, strict=True))
    classes = detection.coco_data(pairs).classes
    data = tmp_path / "boxes.json"
    data.write_text(json.dumps({"truth": truth, "pred": pred, "classes": classes, "ious": IOUS}))
    worker = tmp_path / "worker.py"
    worker.write_text(WORKER)
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOUPE_")}
    env.update(
        FIFTYONE_DATABASE_DIR=str(tmp_path / "db"),
        FIFTYONE_DO_NOT_TRACK="true",
        FIFTYONE_DATABASE_VALIDATION="false",
        FIFTYONE_SHOW_PROGRESS_BARS="false",
    )
    done = subprocess.run(
        [str(PYTHON), str(worker), str(data)],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    theirs = json.loads(done.stdout.strip().splitlines()[-1])
    for iou in IOUS:
        ours = confusion(pairs, iou=iou, classes=classes)
        assert ours.labels == [*classes, "(none)"]
        assert ours.matrix == theirs[str(iou)], iou
        off = sum(ours.matrix[i][j] for i in range(len(classes)) for j in range(len(classes)) if i != j)
        assert off > 0  # class confusions, not only misses: the comparison covers the class-blind matching
