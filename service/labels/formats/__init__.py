"""Annotation file formats, one module per family; each turns bytes into `Record`s or refuses them whole."""

from __future__ import annotations

from service.errors import InvalidAnnotations
from service.labels.formats import coco, label_studio, loupe, tabular, yolo
from service.labels.records import Record

FORMATS = ("loupe", "csv", "coco", "yolo", "label-studio")


def parse(fmt: str, data: bytes, *, task: str, classes: list[str] | None) -> list[Record]:
    """The records of an uploaded file of format `fmt` for a set of `task`.

    `classes` (the set's, in order) name YOLO's class ids when the upload has no names file.

    Raises:
        InvalidAnnotations: the file is malformed; the detail names the line (or record) and field.
    """
    if fmt == "loupe":
        return loupe.parse_jsonl(data)
    if fmt == "csv":
        if task != "classification":
            raise InvalidAnnotations("format csv holds classification labels; this is a detection set")
        return tabular.parse(data)
    if fmt == "coco":
        if task != "detection":
            raise InvalidAnnotations(
                "format coco holds boxes; this is a classification set (use loupe or csv)"
            )
        return coco.parse(data)
    if fmt == "yolo":
        if task != "detection":
            raise InvalidAnnotations(
                "format yolo holds boxes; this is a classification set (use loupe or csv)"
            )
        return yolo.parse(data, classes=classes)
    if fmt == "label-studio":
        return label_studio.parse_export(data)
    raise InvalidAnnotations(f"unknown format {fmt!r}; valid formats: {', '.join(FORMATS)}")


def text_of(data: bytes, *, what: str) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidAnnotations(
            f"{what} is not UTF-8 text (byte {exc.start}); nothing was imported"
        ) from None
