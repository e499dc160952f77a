"""The README's tool recipes, run as written against one `gateway serve --fake-upstream` process.

A test that runs a recipe is e2e (a real server on loopback). No test may reach the network: telemetry is
switched off in the environment, tiktoken reads the copy the gateway ships, and a guard refuses
(and records) any connection or name lookup that is not loopback, failing the test that made it.
"""

from __future__ import annotations

import importlib.util
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.content.tokens import install_tiktoken_cache
from tests.e2e.processes import Server, serve_fake
from tests.recipes.pictures import PICTURES, write_pictures
from tests.recipes.running import loopback

HERE = Path(__file__).parent
OFFLINE_ENV = {
    "ANONYMIZED_TELEMETRY": "False",  # chromadb's posthog
    "HAYSTACK_TELEMETRY_ENABLED": "False",
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "DO_NOT_TRACK": "1",
    "SCARF_NO_ANALYTICS": "true",
}


# The package each recipe module needs, from the `integrations` extra (not part of `dev`).
TOOLS = {
    "test_chroma": "chromadb",
    "test_haystack": "haystack",
    "test_langchain": "langchain_core",
    "test_llamaindex": "llama_index.embeddings.openai",
    "test_qdrant": "qdrant_client",
}


@pytest.fixture(autouse=True)
def _tool_installed(request: pytest.FixtureRequest) -> None:
    """A recipe whose tool is not installed: skipped locally, a failure under CI=true."""
    module = TOOLS.get(request.module.__name__.rsplit(".", 1)[-1])
    if module is None or _importable(module):
        return
    message = f"{module} is not installed: pip install -e '.[integrations]'"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # a parent package is missing
        return False


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A recipe test that runs against the served gateway is e2e; in-process ones are not."""
    for item in items:
        if item.path.is_relative_to(HERE) and "gateway_base" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def gateway_base(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One fake-upstream gateway for every recipe (per xdist worker): its base URL. Client auth is
    on, with the recipes' own key, so a request a recipe sends without its key fails the test."""
    where = tmp_path_factory.mktemp("recipes-gateway")
    env = {"GATEWAY_CACHE_DIR": str(where / "cache"), "GATEWAY_API_KEYS": "unused"}
    server: Server = serve_fake(where, **env)
    try:
        yield server.base
    finally:
        server.stop()


@pytest.fixture(scope="session")
def _offline_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    tiktoken_dir = tmp_path_factory.mktemp("tiktoken")
    install_tiktoken_cache(str(tiktoken_dir))  # LangChain and LlamaIndex tokenise with cl100k
    with pytest.MonkeyPatch.context() as patch:
        for name, value in {**OFFLINE_ENV, "TIKTOKEN_CACHE_DIR": str(tiktoken_dir)}.items():
            patch.setenv(name, value)
        yield


@pytest.fixture(autouse=True)
def no_network(_offline_env: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Refuse anything but loopback; the test fails if its code (or a thread it started) tried."""
    refused: list[str] = []
    connect = socket.socket.connect
    connect_ex = socket.socket.connect_ex
    getaddrinfo = socket.getaddrinfo

    def allowed(sock: socket.socket, address: Any) -> bool:
        if sock.family not in (socket.AF_INET, socket.AF_INET6):
            return True  # unix sockets and the like stay on the machine
        if not loopback(address[0]):
            refused.append(f"connect {address!r}")
            return False
        return True

    def guarded_connect(sock: socket.socket, address: Any) -> None:
        if not allowed(sock, address):
            raise OSError("tests/recipes: no network")
        connect(sock, address)

    def guarded_connect_ex(sock: socket.socket, address: Any) -> int:
        return connect_ex(sock, address) if allowed(sock, address) else 111

    def guarded_getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else host
        if not loopback(name):
            refused.append(f"lookup {name!r}")
            raise socket.gaierror(socket.EAI_NONAME, "tests/recipes: no network")
        return getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", guarded_connect)
    monkeypatch.setattr(socket.socket, "connect_ex", guarded_connect_ex)
    monkeypatch.setattr(socket, "getaddrinfo", guarded_getaddrinfo)
    yield refused
    assert not refused, f"the recipe tried to reach the network: {refused}"


@pytest.fixture
def photos(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, bytes]:
    """The recipes' working directory, holding photos/{bicycle,cat,mountain}.png: bytes by path."""
    monkeypatch.chdir(tmp_path)
    write_pictures(Path("photos"))
    return {f"photos/{name}": (Path("photos") / name).read_bytes() for name in PICTURES}
