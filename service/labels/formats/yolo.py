"""YOLO detection labels, uploaded as one zip: a `.txt` per image and the class names.

Each txt line is `class_id cx cy w h [confidence]`, coordinates as fractions of the image
(a confidence makes it a prediction). The txt file's path inside the zip names the image
without its extension, relative to the source root; a leading `labels/` directory stands for
`images/` (YOLO's layout) or for the root itself. Class names come from `classes.txt` or
`obj.names` (one a line) or `data.yaml` (`names:` as a list or a mapping) anywhere in the
zip, else from the set's declared classes, in order.
"""

from __future__ import annotations

import io
import re
import zipfile
from typing import Any

from service.errors import InvalidAnnotations, MissingDependency
from service.labels.records import AssetRef, Record, fail, number

NAME_FILES = ("classes.txt", "obj.names", "data.yaml", "dataset.yaml")
MAX_FILES = 1_000_000


def parse(data: bytes, *, classes: list[str] | None) -> list[Record]:
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        raise InvalidAnnotations(
            "format yolo takes one zip of label .txt files and a classes.txt; this is not a zip"
        ) from None
    with archive:
        members = [m for m in archive.infolist() if not m.is_dir() and not _hidden(m.filename)]
        if len(members) > MAX_FILES:
            raise InvalidAnnotations(f"the zip holds more than {MAX_FILES} files")
        by_name = {m.filename.rsplit("/", 1)[-1]: m for m in members}
        names = _names(archive, by_name) or classes
        if not names:
            raise InvalidAnnotations(
                "the zip has no classes.txt, obj.names or data.yaml, and the set declares no classes: "
                "YOLO class ids need names; nothing was imported"
            )
        out: list[Record] = []
        for m in sorted(members, key=lambda m: m.filename):
            base = m.filename.rsplit("/", 1)[-1]
            if not base.endswith(".txt") or base in NAME_FILES:
                continue
            text = archive.read(m).decode("utf-8-sig", errors="strict")
            out.append(_record(m.filename, text, names))
    if not out:
        raise InvalidAnnotations("the zip holds no label .txt files; nothing was imported")
    return out


def image_stems(path: str) -> list[str]:
    """The images a label file may stand for, without extension, in the order tried:
    labels/train/a.txt -> images/train/a (YOLO's layout), then train/a, then labels/train/a."""
    stem = path[: -len(".txt")]
    parts = stem.split("/")
    if parts[0] == "labels" and len(parts) > 1:
        return ["/".join(["images", *parts[1:]]), "/".join(parts[1:]), stem]
    return [stem]


def _record(path: str, text: str, names: list[str]) -> Record:
    boxes: list[dict[str, Any]] = []
    for n, line in enumerate(text.splitlines(), start=1):
        where = f"{path} line {n}"
        cells = line.split()
        if not cells:
            continue
        if len(cells) not in (5, 6):
            raise fail(where, None, f"expected `class cx cy w h [confidence]`, got {len(cells)} values")
        if not re.fullmatch(r"\d+", cells[0]) or int(cells[0]) >= len(names):
            raise fail(where, "class", f"{cells[0]!r} is not a class id 0..{len(names) - 1}")
        try:
            cx, cy, w, h, *conf = (float(c) for c in cells[1:])
        except ValueError:
            raise fail(where, None, "coordinates must be numbers") from None
        for name, v in (("cx", cx), ("cy", cy), ("w", w), ("h", h)):
            number(v, where=where, name=name)
        box: dict[str, Any] = {"label": names[int(cells[0])], "bbox": [cx - w / 2, cy - h / 2, w, h]}
        if conf:
            box["score"] = conf[0]
        boxes.append(box)
    return Record(
        where=path, ref=AssetRef(file=path), boxes=boxes, units="fraction", extra={"stems": image_stems(path)}
    )


def _names(archive: zipfile.ZipFile, by_name: dict[str, zipfile.ZipInfo]) -> list[str] | None:
    for plain in ("classes.txt", "obj.names"):
        if plain in by_name:
            lines = archive.read(by_name[plain]).decode("utf-8-sig").splitlines()
            return [line.strip() for line in lines if line.strip()]
    for yaml_name in ("data.yaml", "dataset.yaml"):
        if yaml_name in by_name:
            return _yaml_names(archive.read(by_name[yaml_name]).decode("utf-8-sig"), yaml_name)
    return None


def _yaml_names(text: str, where: str) -> list[str]:
    try:
        import yaml  # PyYAML comes with Ray and the dev tools; only a data.yaml needs it
    except ImportError:
        raise MissingDependency(
            f"reading {where} needs PyYAML: pip install pyyaml, or put a classes.txt in the zip"
        ) from None
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InvalidAnnotations(f"{where} is not YAML: {exc}") from None
    names = doc.get("names") if isinstance(doc, dict) else None
    if isinstance(names, dict):
        return [str(names[k]) for k in sorted(names)]
    if isinstance(names, list):
        return [str(v) for v in names]
    raise InvalidAnnotations(f"{where} has no `names` list or mapping")


def _hidden(path: str) -> bool:
    return any(part.startswith(".") or part == "__MACOSX" for part in path.split("/"))
