"""Label Studio tasks from assets: the default label config, reading a project's config, and
pre-annotations from a predictions label set, or from a model label in the asset's metadata.

A task's `data` holds the image URL under the config's image variable (`image` by default),
then `asset_id`, `source`, `key`, `score` (search exports) and the chosen metadata keys
(a key that clashes with one of those is sent as `meta_<key>`).

Pre-annotations from a predictions set (`label_studio.predictions_set`, a model run or a
labeling function): a classification label is a `choices` result, each detection box a
`rectanglelabels` result in Label Studio's percent coordinates (x, y, width, height as % of
the original image, whose pixel size rides along), each with its score; the prediction's
`model_version` is the set's model (`labeling-function:<name>` for a labeling function).
Each is sent only when the project's config has the matching control (<Choices> or
<RectangleLabels> on the image) and knows every label.

The older path: the model label is read from metadata key `prediction`, else `label`
(or the key the request names); its score from `<key>_score`, else `score`. A string is one
choice, a list of strings several. It is sent only when the project's label config has a
`<Choices>` control on the image whose choices include every label, because Label Studio
cannot show a pre-annotation its config does not know.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from xml.sax.saxutils import quoteattr

from service.errors import InvalidQuery

DEFAULT_LABEL_KEYS = ("prediction", "label")
MODEL_VERSION = "loupe-metadata"
RESERVED = ("asset_id", "source", "key", "score")


@dataclass(frozen=True, slots=True)
class TaskShape:
    """What a project's label config expects of a task."""

    image_var: str = "image"  # the data key the <Image> tag reads ($image)
    to_name: str = "image"  # the <Image> tag's name
    from_name: str | None = "label"  # the <Choices> control on it, if any
    choices: frozenset[str] | None = None  # its choice values; None = unknown (a file export)
    rect_from_name: str | None = None  # the <RectangleLabels> control on it, if any
    rect_labels: frozenset[str] | None = None  # its label values; None = unknown

    def accepts(self, labels: list[str]) -> bool:
        if self.from_name is None or not labels:
            return False
        return self.choices is None or all(label in self.choices for label in labels)

    def accepts_boxes(self, labels: list[str]) -> bool:
        if self.rect_from_name is None or not labels:
            return False
        return self.rect_labels is None or all(label in self.rect_labels for label in labels)


@dataclass(frozen=True, slots=True)
class SetPrediction:
    """One asset's annotation in a predictions set, as pre-annotations take it."""

    choices: list[str]
    boxes: list[dict[str, Any]]
    score: float | None
    model_version: str


def set_prediction(asset: Mapping[str, Any], name: str, *, model_version: str) -> SetPrediction | None:
    """The asset's `labels.<name>` value (None when the set does not label it)."""
    value = (asset.get("labels") or {}).get(name)
    if not isinstance(value, dict):
        return None
    label, boxes = value.get("label"), value.get("boxes") or []
    score = value.get("score")
    return SetPrediction(
        choices=[label] if isinstance(label, str) and label else [],
        boxes=[b for b in boxes if isinstance(b, dict)],
        score=float(score) if isinstance(score, int | float) and not isinstance(score, bool) else None,
        model_version=model_version,
    )


def default_label_config(labels: Iterable[str], *, boxes: Iterable[str] | None = None) -> str:
    """Single-choice image classification whose choices are the model labels seen (sorted); with
    `boxes`, rectangle labelling with those labels instead."""
    if boxes is not None:
        names = sorted(set(boxes)) or ["object"]
        tags = "\n".join(f"    <Label value={quoteattr(v)}/>" for v in names)
        return (
            "<View>\n"
            '  <Image name="image" value="$image" zoom="true"/>\n'
            '  <RectangleLabels name="box" toName="image">\n'
            f"{tags}\n"
            "  </RectangleLabels>\n"
            "</View>\n"
        )
    values = sorted(set(labels)) or ["positive", "negative"]
    choices = "\n".join(f"    <Choice value={quoteattr(v)}/>" for v in values)
    return (
        "<View>\n"
        '  <Image name="image" value="$image" zoom="true"/>\n'
        '  <Choices name="label" toName="image" choice="single" showInline="true">\n'
        f"{choices}\n"
        "  </Choices>\n"
        "</View>\n"
    )


def shape_of(label_config: str, *, where: str = "label_studio.label_config") -> TaskShape:
    """Read the image variable and the classification control from a label config.

    Raises:
        InvalidQuery: the config is not XML or has no <Image value="$var"> tag.
    """
    try:
        root = ET.fromstring(label_config)
    except ET.ParseError as exc:
        raise InvalidQuery(f"the label config is not valid XML: {exc}", path=where) from None
    image = next((el for el in root.iter("Image") if el.get("value", "").startswith("$")), None)
    if image is None:
        raise InvalidQuery(
            'the label config has no <Image name="..." value="$var"/> tag; Loupe exports images', path=where
        )
    name = image.get("name") or "image"
    control = next((el for el in root.iter("Choices") if el.get("toName") == name), None)
    choices = None if control is None else frozenset(c.get("value", "") for c in control.iter("Choice"))
    rect = next((el for el in root.iter("RectangleLabels") if el.get("toName") == name), None)
    return TaskShape(
        image_var=image.get("value", "$image")[1:],
        to_name=name,
        from_name=None if control is None else control.get("name"),
        choices=choices,
        rect_from_name=None if rect is None else rect.get("name"),
        rect_labels=None if rect is None else frozenset(t.get("value", "") for t in rect.iter("Label")),
    )


def model_label(meta: Mapping[str, Any], field: str | None) -> tuple[list[str], float | None]:
    """The model label(s) and score in an asset's metadata; ([], None) when it has none."""
    for key in (field,) if field else DEFAULT_LABEL_KEYS:
        value = meta.get(key)
        if isinstance(value, str) and value:
            labels = [value]
        elif isinstance(value, list) and value and all(isinstance(v, str) and v for v in value):
            labels = list(value)
        else:
            continue
        score = meta.get(f"{key}_score", meta.get("score"))
        ok = isinstance(score, int | float) and not isinstance(score, bool) and math.isfinite(score)
        return labels, float(score) if ok else None
    return [], None


def build_task(
    *,
    asset: Mapping[str, Any],
    image_url: str,
    score: float | None,
    metadata: Mapping[str, Any],
    shape: TaskShape,
    prediction: tuple[list[str], float | None] | None,
    from_set: SetPrediction | None = None,
) -> dict[str, Any]:
    """One task for Label Studio's import API (and its tasks JSON file)."""
    data: dict[str, Any] = {
        shape.image_var: image_url,
        "asset_id": asset["id"],
        "source": asset.get("source"),
    }
    data["key"] = asset.get("key")
    if score is not None:
        data["score"] = round(score, 6)
    for name, value in metadata.items():
        data[f"meta_{name}" if name in data or name in RESERVED else name] = value
    task: dict[str, Any] = {"data": data}
    if from_set is not None:
        pred_from_set = _set_prediction(from_set, shape, asset)
        if pred_from_set is not None:
            task["predictions"] = [pred_from_set]
    elif prediction is not None and shape.accepts(prediction[0]):
        labels, pscore = prediction
        result = {
            "from_name": shape.from_name,
            "to_name": shape.to_name,
            "type": "choices",
            "value": {"choices": labels},
        }
        pred: dict[str, Any] = {"model_version": MODEL_VERSION, "result": [result]}
        if pscore is not None:
            pred["score"] = pscore
        task["predictions"] = [pred]
    return task


def _set_prediction(p: SetPrediction, shape: TaskShape, asset: Mapping[str, Any]) -> dict[str, Any] | None:
    """A Label Studio prediction from a set's annotation; None when the config cannot show it."""
    result: list[dict[str, Any]] = []
    if shape.accepts(p.choices):
        result.append(
            {
                "from_name": shape.from_name,
                "to_name": shape.to_name,
                "type": "choices",
                "value": {"choices": p.choices},
            }
        )
    width, height = asset.get("width"), asset.get("height")
    labels = [str(b.get("label")) for b in p.boxes]
    if p.boxes and width and height and shape.accepts_boxes(labels):
        for box, label in zip(p.boxes, labels, strict=True):
            x, y, w, h = (float(v) for v in box["bbox"])
            region: dict[str, Any] = {
                "from_name": shape.rect_from_name,
                "to_name": shape.to_name,
                "type": "rectanglelabels",
                "original_width": int(width),
                "original_height": int(height),
                "image_rotation": 0,
                "value": {
                    "x": 100.0 * x / width,
                    "y": 100.0 * y / height,
                    "width": 100.0 * w / width,
                    "height": 100.0 * h / height,
                    "rotation": 0,
                    "rectanglelabels": [label],
                },
            }
            if "score" in box:
                region["score"] = float(box["score"])
            result.append(region)
    if not result:
        return None
    out: dict[str, Any] = {"model_version": p.model_version, "result": result}
    if p.score is not None:
        out["score"] = p.score
    return out
