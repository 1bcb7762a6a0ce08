"""The JSON filter language: every operator parses to the AST, every error names its path."""

from __future__ import annotations

from typing import Any

import pytest

from service.errors import InvalidQuery
from service.index.base import Condition, FieldType, Filter
from service.index.filters import (
    MAX_CONDITIONS,
    MAX_DEPTH,
    OPERATORS,
    field_key,
    field_type_of,
    parse_filter,
    parse_timestamp,
)


def one(obj: dict[str, Any]) -> Condition | Filter:
    flt = parse_filter(obj)
    assert flt is not None and len(flt.must) == 1 and not flt.should and not flt.must_not
    return flt.must[0]


def error(obj: Any) -> InvalidQuery:
    with pytest.raises(InvalidQuery) as info:
        parse_filter(obj)
    return info.value


# -- operators -------------------------------------------------------------


def test_no_filter() -> None:
    assert parse_filter(None) is None
    assert parse_filter({}) is None


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        ({"source": "s3-prod"}, Condition(key="source", eq="s3-prod")),
        ({"width": 640}, Condition(key="width", eq=640)),
        ({"flagged": True}, Condition(key="meta.flagged", eq=True)),
        ({"source": {"eq": "a"}}, Condition(key="source", eq="a")),
        (
            {"label": {"in": ["bike", "unicycle"]}},
            Condition(key="meta.label", any_of=["bike", "unicycle"]),
        ),
        ({"width": {"in": [640, 1024]}}, Condition(key="width", any_of=[640, 1024])),
        ({"width": {"gte": 1024}}, Condition(key="width", range={"gte": 1024.0})),
        (
            {"score": {"gt": 0.5, "lte": 0.9}},
            Condition(key="meta.score", range={"gt": 0.5, "lte": 0.9}),
        ),
        ({"height": {"lt": 10}}, Condition(key="height", range={"lt": 10.0})),
        ({"score": 0.25}, Condition(key="meta.score", range={"gte": 0.25, "lte": 0.25})),
        ({"tags": {"exists": True}}, Condition(key="meta.tags", exists=True)),
        ({"tags": {"exists": False}}, Condition(key="meta.tags", exists=False)),
        ({"filename": {"match": "night"}}, Condition(key="filename", match="night")),
    ],
)
def test_field_operators(obj: dict[str, Any], expected: Condition) -> None:
    assert one(obj) == expected


def test_datetime_range_is_validated_and_normalised_to_utc() -> None:
    cond = one({"captured_at": {"gte": "2024-01-01T02:00:00+02:00", "lt": "2024-02-01"}})
    assert cond == Condition(
        key="meta.captured_at",
        range={"gte": "2024-01-01T00:00:00Z", "lt": "2024-02-01T00:00:00Z"},
        is_datetime=True,
    )


def test_equality_on_a_builtin_datetime_is_a_point_range() -> None:
    cond = one({"modified_at": "2024-05-01T10:00:00Z"})
    assert cond == Condition(
        key="modified_at",
        range={"gte": "2024-05-01T10:00:00Z", "lte": "2024-05-01T10:00:00Z"},
        is_datetime=True,
    )


def test_negations_are_must_not() -> None:
    assert parse_filter({"source": {"ne": "a"}}) == Filter(must_not=[Condition(key="source", eq="a")])
    assert parse_filter({"label": {"nin": ["x", "y"]}}) == Filter(
        must_not=[Condition(key="meta.label", any_of=["x", "y"])]
    )


def test_several_fields_and_operators_are_anded() -> None:
    flt = parse_filter({"source": "a", "width": {"gte": 10, "lt": 20, "ne": 15}})
    assert flt == Filter(
        must=[
            Condition(key="source", eq="a"),
            Filter(must_not=[Condition(key="width", eq=15)]),
            Condition(key="width", range={"gte": 10.0, "lt": 20.0}),
        ]
    )


def test_combinators_nest() -> None:
    flt = parse_filter(
        {
            "or": [{"source": "a"}, {"source": "b", "width": 1}],
            "not": {"label": "cat"},
            "and": [{"split": "train"}, {"not": {"tags": {"exists": True}}}],
        }
    )
    assert flt == Filter(
        must=[
            Filter(
                should=[
                    Condition(key="source", eq="a"),
                    Filter(must=[Condition(key="source", eq="b"), Condition(key="width", eq=1)]),
                ]
            ),
            Filter(must_not=[Condition(key="meta.label", eq="cat")]),
            Filter(
                must=[
                    Condition(key="meta.split", eq="train"),
                    Filter(must_not=[Condition(key="meta.tags", exists=True)]),
                ]
            ),
        ]
    )


def test_not_of_several_conditions_negates_their_conjunction() -> None:
    assert parse_filter({"not": {"a": 1, "b": 2}}) == Filter(
        must_not=[Filter(must=[Condition(key="meta.a", eq=1), Condition(key="meta.b", eq=2)])]
    )


def test_a_lone_combinator_is_the_filter_itself() -> None:
    assert parse_filter({"or": [{"a": 1}, {"a": 2}]}) == Filter(
        should=[Condition(key="meta.a", eq=1), Condition(key="meta.a", eq=2)]
    )


# -- field paths -------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("source", "source"),
        ("exports.project", "exports.project"),
        ("exports", "exports"),
        ("meta.camera", "meta.camera"),
        ("metadata.camera.make", "meta.camera.make"),
        ("label", "meta.label"),
        ("camera.make", "meta.camera.make"),
        ("boxes[].label", "meta.boxes[].label"),
    ],
)
def test_field_paths(name: str, key: str) -> None:
    assert field_key(name) == key


@pytest.mark.parametrize("name", ["", "a..b", "a b", "meta", "a[0]", 5])
def test_bad_field_names(name: Any) -> None:
    with pytest.raises(InvalidQuery) as info:
        field_key(name, path="filter.x")
    assert info.value.path == "filter.x"


# -- errors name their path ----------------------------------------------------


@pytest.mark.parametrize(
    ("obj", "path", "words"),
    [
        ([], "filter", "expected a JSON object"),
        ("source", "filter", "expected a JSON object"),
        ({"x": {"like": 1}}, "filter.x.like", "valid operators: eq, ne, in"),
        ({"x": {}}, "filter.x", "expected an operator"),
        ({"x": None}, "filter.x", "exists"),
        ({"x": [1, 2]}, "filter.x", '"in"'),
        ({"x": {"in": []}}, "filter.x.in", "non-empty list"),
        ({"x": {"in": "a"}}, "filter.x.in", "non-empty list"),
        ({"x": {"in": [1, "a"]}}, "filter.x.in", "only strings or only integers"),
        ({"x": {"nin": [1.5]}}, "filter.x.nin", "only strings or only integers"),
        ({"x": {"in": [True]}}, "filter.x.in", "only strings or only integers"),
        ({"x": {"eq": {"a": 1}}}, "filter.x.eq", "string, number or boolean"),
        ({"x": {"gte": True}}, "filter.x.gte", "a number or an RFC 3339 timestamp"),
        ({"x": {"gte": "yesterday"}}, "filter.x.gte", "a number or an RFC 3339 timestamp"),
        ({"x": {"gte": "2024-13-01T00:00:00Z"}}, "filter.x.gte", "RFC 3339"),
        ({"x": {"gte": 1, "lt": "2024-01-01"}}, "filter.x", "mixes numbers and timestamps"),
        ({"x": {"gte": float("inf")}}, "filter.x.gte", "finite"),
        ({"x": {"exists": "yes"}}, "filter.x.exists", "true or false"),
        ({"x": {"match": ""}}, "filter.x.match", "non-empty string"),
        ({"x": {"match": 3}}, "filter.x.match", "non-empty string"),
        ({"and": {"a": 1}}, "filter.and", "non-empty list"),
        ({"or": []}, "filter.or", "non-empty list"),
        ({"or": [{"a": 1}, "b"]}, "filter.or[1]", "expected a filter object"),
        ({"or": [{"a": 1}, {}]}, "filter.or[1]", "empty object"),
        ({"not": [{"a": 1}]}, "filter.not", "expected a filter object"),
        ({"and": [{"a": 1}, {"width": {"gte": "abc"}}]}, "filter.and[1].width.gte", "a number"),
        ({"width": "wide"}, "filter.width", "integer"),
        ({"width": {"in": [1, "2"]}}, "filter.width.in", "only strings or only integers"),
        ({"source": 3}, "filter.source", "string"),
        ({"source": {"gte": 3}}, "filter.source.gte", "no range"),
        ({"modified_at": {"gt": 5}}, "filter.modified_at.gt", "RFC 3339"),
        ({"a b": 1}, "filter.a b", "invalid field name"),
    ],
)
def test_errors_name_their_path(obj: Any, path: str, words: str) -> None:
    exc = error(obj)
    assert exc.path == path
    assert words in exc.detail
    assert exc.detail.startswith(f"{path}: ")


def test_unknown_operator_lists_every_valid_one() -> None:
    exc = error({"or": [{"a": 1}, {"width": {"between": [1, 2]}}]})
    assert exc.path == "filter.or[1].width.between"
    assert all(op in exc.detail for op in OPERATORS)


def test_depth_is_bounded() -> None:
    obj: dict[str, Any] = {"a": 1}
    for _ in range(MAX_DEPTH - 1):
        obj = {"not": obj}
    assert parse_filter(obj) is not None
    exc = error({"not": obj})
    assert "deeper than 16" in exc.detail
    assert exc.path is not None and exc.path.startswith("filter.not.not")


def test_condition_count_is_bounded() -> None:
    assert parse_filter({f"f{i}": i for i in range(MAX_CONDITIONS)}) is not None
    exc = error({"or": [{f"f{i}": i} for i in range(MAX_CONDITIONS + 1)]})
    assert exc.path == f"filter.or[{MAX_CONDITIONS}].f{MAX_CONDITIONS}"
    assert "more than 256 conditions" in exc.detail


def test_a_custom_root_path() -> None:
    with pytest.raises(InvalidQuery) as info:
        parse_filter({"x": {"bad": 1}}, path="search.filter")
    assert info.value.path == "search.filter.x.bad"


# -- helpers -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        ("bike", FieldType.keyword),
        ("2024-01-01", FieldType.keyword),
        ("2024-01-01T10:00:00Z", FieldType.datetime),
        ("2024-01-01 10:00:00", FieldType.datetime),
        ("2024-99-01T10:00:00Z", FieldType.keyword),
        (True, FieldType.bool),
        (3, FieldType.integer),
        (0.5, FieldType.float),
        (float("nan"), None),
        (["a", "b"], FieldType.keyword),
        ([1, 2], FieldType.integer),
        ([1, "a"], None),
        ([], None),
        ({"a": 1}, None),
        (None, None),
    ],
)
def test_field_type_of(value: Any, kind: FieldType | None) -> None:
    assert field_type_of(value) is kind


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("2024-01-01T00:00:00Z", "2024-01-01T00:00:00Z"),
        ("2024-01-01t00:00:00z", "2024-01-01T00:00:00Z"),
        ("2024-01-01T01:30:00+01:30", "2024-01-01T00:00:00Z"),
        ("2024-01-01T00:00:00.25Z", "2024-01-01T00:00:00.250000Z"),
        ("2024-01-01", "2024-01-01T00:00:00Z"),
        ("2024-01-01 12:00", "2024-01-01T12:00:00Z"),
        ("20240101T000000", None),
        ("2024-02-30", None),
        ("soon", None),
    ],
)
def test_parse_timestamp(text: str, canonical: str | None) -> None:
    assert parse_timestamp(text) == canonical
