"""The recipes as text: each names its tested versions, the README carries each verbatim, and the
network guard the recipe tests rely on refuses what it must."""

from __future__ import annotations

import re
import socket
from importlib.metadata import version
from pathlib import Path

import pytest
from packaging.version import Version

from tests.recipes.running import README_BASE, SNIPPETS, loopback, snippet, versions_line

ROOT = Path(__file__).resolve().parents[2]
RECIPES = sorted(p.stem for p in SNIPPETS.glob("*.py"))
SECTION = "## Recipes: LlamaIndex, Haystack, ChromaDB, Qdrant, LangChain"


def test_there_is_a_recipe_per_tool() -> None:
    assert RECIPES == ["chroma", "haystack", "langchain", "llamaindex", "qdrant"]


@pytest.mark.parametrize("name", RECIPES)
def test_each_recipe_states_versions_it_was_tested_with_and_no_newer_than_installed(
    name: str,
) -> None:
    code = snippet(name)
    assert code.count(README_BASE) == 1
    stated = dict(re.findall(r"([\w.-]+) (\d[\w.]*)", versions_line(code)))
    assert stated, versions_line(code)
    for package, tested in stated.items():
        assert Version(version(package)) >= Version(tested), package


def python_blocks(markdown: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```$", markdown, flags=re.M | re.S)


@pytest.mark.parametrize("name", RECIPES)
def test_the_readme_shows_each_recipe_exactly(name: str) -> None:
    readme = (ROOT / "README.md").read_text()
    assert SECTION in readme
    assert snippet(name) in python_blocks(readme.split(SECTION, 1)[1])


def test_the_network_guard_is_on_and_allows_only_loopback() -> None:
    assert socket.socket.connect.__name__ == "guarded_connect"
    assert socket.getaddrinfo.__name__ == "guarded_getaddrinfo"
    assert all(map(loopback, ["127.0.0.1", "127.8.0.1", "::1", "localhost"]))
    assert not any(map(loopback, ["192.0.2.1", "10.0.0.1", "2001:db8::1", "example.com", ""]))
