"""OpenAI `input` grammar -> canonical Contents, one per top-level element (WIRE.md)."""

from __future__ import annotations

from typing import Any

from gateway.content import Content
from gateway.errors import InvalidRequest


def parse_input(raw: Any, *, max_inputs: int) -> list[Content]:
    """Every top-level element becomes exactly one Content; errors name the offending field."""
    if isinstance(raw, str):
        # A lone "" is accepted (LangChain sends it for empty documents).
        return [Content.of_text(raw)]
    if not isinstance(raw, list):
        raise InvalidRequest("`input` must be a string or an array of strings", param="input")
    if not raw:
        raise InvalidRequest("`input` must not be an empty array", param="input")
    if len(raw) > max_inputs:
        raise InvalidRequest(
            f"`input` has {len(raw)} elements; at most {max_inputs} are allowed per request",
            param="input",
        )
    contents: list[Content] = []
    for index, element in enumerate(raw):
        contents.append(_element(element, f"input[{index}]"))
    return contents


def _element(element: Any, where: str) -> Content:
    if isinstance(element, str):
        if not element:
            raise InvalidRequest(f"`{where}` is an empty string", param=where)
        return Content.of_text(element)
    raise InvalidRequest(f"`{where}` must be a string, got {_json_type(element)}", param=where)


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__
