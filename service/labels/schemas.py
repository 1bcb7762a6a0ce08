"""API schemas of label sets and annotation imports (shared by the routes, the CLI and the client)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

Role = Literal["ground_truth", "predictions"]
Task = Literal["classification", "detection"]
FileFormat = Literal["loupe", "csv", "coco", "yolo", "label-studio"]
# A set's name is a segment of payload paths (`labels.<set>.label`), so the filter language's
# segment characters only; it starts with a letter or digit.
SET_NAME = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"
MAX_CLASSES = 10_000
IMPORT_COUNTS = ("received", "imported", "unknown_asset", "invalid")


class LabelSetCreate(BaseModel):
    """POST /labelsets: a named set of annotations of one role and task."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=SET_NAME, description="Letters, digits, '_', '-'; filters say labels.<name>.")
    role: Role
    task: Task
    classes: list[str] | None = Field(
        default=None,
        max_length=MAX_CLASSES,
        description="The class names the set allows; without them the set learns the names its imports use.",
    )
    model: str | None = Field(default=None, max_length=500, description="Free text: the model or run.")

    @field_validator("classes")
    @classmethod
    def _classes(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        seen: set[str] = set()
        for i, name in enumerate(value):
            if not isinstance(name, str) or not name.strip() or len(name) > 200:
                raise ValueError(f"classes[{i}]: expected a non-empty class name of at most 200 characters")
            if name in seen:
                raise ValueError(f"classes[{i}]: {name!r} is listed twice")
            seen.add(name)
        return value


class LabelSetPublic(BaseModel):
    """A label set as GET /labelsets/{name} returns it."""

    name: str
    role: Role
    task: Task
    classes: list[str] = Field(description="Declared at creation, or learned from the imports.")
    classes_declared: bool = Field(description="True when imports must use the declared classes.")
    model: str | None = None
    assets: int = Field(description="Assets that hold an annotation of this set.")
    created_at: str | None = None
    updated_at: str | None = None
    last_job_id: str | None = Field(default=None, description="The latest import's job.")


class LabelSetsPublic(BaseModel):
    data: list[LabelSetPublic]
    next_cursor: str | None = None


class LabelStudioSource(BaseModel):
    """A Label Studio project to pull submitted annotations from (one Loupe exported to)."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(min_length=1, max_length=2000, pattern=r"^https?://")
    token: SecretStr = Field(min_length=1, max_length=2000)
    project_id: int = Field(ge=1, le=2**31 - 1)


class AnnotationImport(BaseModel):
    """POST /labelsets/{name}/annotations as JSON: records inline, a metadata field, or Label Studio."""

    model_config = ConfigDict(extra="forbid")

    format: Literal["loupe"] | None = Field(default=None, description="With `annotations`: loupe.")
    annotations: list[dict[str, Any]] | None = Field(
        default=None,
        max_length=200_000,
        description=(
            'Loupe records: {"asset_id"} or {"source", "key"}, then "label", "score", "scores" '
            '(classification) or "boxes": [{"label", "score"?, "bbox": [x, y, w, h]}] (detection).'
        ),
    )
    source: str | None = Field(default=None, max_length=200, description="The source file names refer to.")
    from_field: str | None = Field(
        default=None, max_length=300, description="A metadata field whose values become the labels."
    )
    label_studio: LabelStudioSource | None = None
