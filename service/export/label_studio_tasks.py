"""Label Studio tasks from assets: the default label config, reading a project's config, and
pre-annotations from a model label in the asset's metadata.

A task's `data` holds the image URL under the config's image variable (`image` by default),
then `asset_id`, `source`, `key`, `score` (search exports) and the chosen metadata keys
(a key that clashes with one of those is sent as `meta_<key>`).

Pre-annotations: the model label is read from metadata key `prediction`, else `label`
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

    def accepts(self, labels: list[str]) -> bool:
        if self.from_name is None or not labels:
            return False
        return self.choices is None or all(label in self.choices for label in labels)


def default_label_config(labels: Iterable[str]) -> str:
    """Single-choice image classification whose choices are the model labels seen (sorted)."""
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
    return TaskShape(
        image_var=image.get("value", "$image")[1:],
        to_name=name,
        from_name=None if control is None else control.get("name"),
        choices=choices,
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
    if prediction is not None and shape.accepts(prediction[0]):
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
