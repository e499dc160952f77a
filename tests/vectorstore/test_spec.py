"""Collection names: each one is a directory, so only a plain, whole-string match is accepted."""

from __future__ import annotations

import pytest

from gateway.errors import InvalidRequest
from gateway.vectorstore import check_name


@pytest.mark.parametrize("name", ["a", "docs", "Docs-2024_v1.2", "x" * 64, "0lead"])
def test_plain_names_are_accepted(name: str) -> None:
    assert check_name(name) == name


@pytest.mark.parametrize(
    "name",
    ["a\n", "a\r\n", "\na", "a\nb", "", ".hidden", "-a", "a/b", "../etc", "a b", "x" * 65, "é"],
)
def test_anything_else_is_a_400_naming_name(name: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        check_name(name)
    assert caught.value.param == "name" and caught.value.http_status == 400
