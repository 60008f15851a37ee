"""The OpenAPI pieces generated from typed bodies, and the refusal of a bad body."""

from __future__ import annotations

from typing import Annotated, Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, ConfigDict, Field
from typing_extensions import TypedDict

from bastion.server.common import (
    Refusal,
    component,
    components,
    header_text,
    lossy_header,
    parse_body,
)
from bastion.server.errors import ApiError


class Point(TypedDict):
    x: int
    y: int


class Corner(TypedDict):
    """Where a shape starts: the top left
    of its box."""

    at: Point


class Shape(TypedDict):
    corner: Corner
    usage: Annotated[dict[str, Any], component("Usage")]


class Line(TypedDict):
    start: Point
    end: Point


def test_a_type_used_once_is_written_in_place_and_a_shared_one_is_a_component() -> None:
    schemas = components([Shape, Line])

    assert set(schemas) == {"Shape", "Line", "Point"}
    corner = schemas["Shape"]["properties"]["corner"]
    assert corner["properties"]["at"] == {"$ref": "#/components/schemas/Point"}
    assert corner["description"] == "Where a shape starts: the top left of its box."
    assert schemas["Line"]["properties"]["end"] == {"$ref": "#/components/schemas/Point"}


def test_a_hand_written_component_is_referred_to() -> None:
    shape = components([Shape])["Shape"]
    assert shape["properties"]["usage"] == {"$ref": "#/components/schemas/Usage"}


class Order(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    item: Annotated[str, Field(min_length=1), Refusal("must name an item")]
    sizes: list[int] = []


@given(st.text(min_size=1).filter(lambda key: key not in Order.model_fields))
def test_an_unknown_field_is_named_before_any_other(key: str) -> None:
    with pytest.raises(ApiError) as refused:
        parse_body(Order, {"item": "", key: 1}, noun="an order")
    error = refused.value
    assert (error.status, error.param, error.code) == (400, key, "invalid_value")
    assert error.message == f"{key}: unknown field; an order has item, sizes"


@pytest.mark.parametrize(
    ("body", "param", "message"),
    [
        ({}, "item", "item: must name an item"),
        ({"item": 3}, "item", "item: must name an item"),
        ({"item": "tea", "sizes": [1, "2"]}, "sizes[1]", "sizes[1]: Input should be"),
    ],
)
def test_a_bad_field_is_named_as_a_path(body: dict[str, Any], param: str, message: str) -> None:
    with pytest.raises(ApiError) as refused:
        parse_body(Order, body)
    assert refused.value.param == param
    assert refused.value.message.startswith(message)


def test_a_body_that_is_not_an_object_is_refused_as_json() -> None:
    with pytest.raises(ApiError) as refused:
        parse_body(Order, ["tea"])
    assert (refused.value.param, refused.value.code) == (None, "invalid_json")


# --- header values, as aiohttp decodes them (UTF-8 with surrogateescape) ---------------


@given(st.binary(max_size=40))
def test_a_header_value_is_accepted_exactly_when_its_bytes_are_utf8(raw: bytes) -> None:
    value = raw.decode(errors="surrogateescape")
    try:
        expected: str | None = raw.decode()
    except UnicodeDecodeError:
        expected = None
    if expected is not None:
        assert header_text("x-bastion-context-tier", value) == expected
    else:
        with pytest.raises(ApiError) as caught:
            header_text("x-bastion-context-tier", value)
        assert (caught.value.status, caught.value.param) == (400, "x-bastion-context-tier")


@given(st.binary(max_size=40))
def test_a_lossy_header_value_always_encodes(raw: bytes) -> None:
    text = lossy_header(raw.decode(errors="surrogateescape"))
    assert text == raw.decode(errors="replace")
    text.encode()
