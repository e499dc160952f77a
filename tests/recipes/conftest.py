"""The README's tool recipes, run as written against one `gateway serve --fake-upstream` process.

Every test here is e2e (a real server on loopback). No test may reach the network: telemetry is
switched off in the environment, tiktoken reads the copy the gateway ships, and a guard refuses
(and records) any connection or name lookup that is not loopback, failing the test that made it.
"""

from __future__ import annotations

import builtins
import io
import ipaddress
import re
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from gateway.content.tokens import install_tiktoken_cache
from gateway.fake import vectors as fake_vectors
from gateway.fake.records import FakePart
from tests.e2e.processes import Server, serve_fake
from tests.recipes.pictures import MODEL, PICTURES, write_pictures

HERE = Path(__file__).parent
SNIPPETS = HERE / "snippets"
README_BASE = "http://127.0.0.1:8080"
OFFLINE_ENV = {
    "ANONYMIZED_TELEMETRY": "False",  # chromadb's posthog
    "HAYSTACK_TELEMETRY_ENABLED": "False",
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "DO_NOT_TRACK": "1",
    "SCARF_NO_ANALYTICS": "true",
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.is_relative_to(HERE):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def gateway_base(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One fake-upstream gateway for every recipe (per xdist worker): its base URL."""
    where = tmp_path_factory.mktemp("recipes-gateway")
    server: Server = serve_fake(where, GATEWAY_CACHE_DIR=str(where / "cache"))
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


def _loopback(host: object) -> bool:
    if host in ("localhost", None):
        return True
    try:
        return ipaddress.ip_address(str(host).split("%")[0]).is_loopback
    except ValueError:
        return False


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
        if not _loopback(address[0]):
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
        if not _loopback(name):
            refused.append(f"lookup {name!r}")
            raise socket.gaierror(socket.EAI_NONAME, "tests/recipes: no network")
        return getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", guarded_connect)
    monkeypatch.setattr(socket.socket, "connect_ex", guarded_connect_ex)
    monkeypatch.setattr(socket, "getaddrinfo", guarded_getaddrinfo)
    yield refused
    assert not refused, f"the recipe tried to reach the network: {refused}"


def snippet(name: str) -> str:
    """A recipe's code exactly as the README shows it."""
    return (SNIPPETS / f"{name}.py").read_text()


def printed_comments(code: str) -> list[str]:
    """What each top-level `print(...)  # out` line says it prints."""
    return [
        line.split("  # ", 1)[1].strip()
        for line in code.splitlines()
        if line.startswith("print(") and "  # " in line
    ]


def run_recipe(name: str, base: str) -> tuple[dict[str, Any], list[str]]:
    """Execute the recipe unchanged but for the gateway's port; its namespace and printed lines."""
    code = snippet(name)
    assert code.count(README_BASE) == 1, "each recipe names the gateway once"
    printed: list[str] = []

    def capture(*args: Any, **kwargs: Any) -> None:
        out = io.StringIO()
        builtins.print(*args, **kwargs, file=out)
        printed.extend(out.getvalue().splitlines())

    namespace: dict[str, Any] = {"__name__": "__recipe__", "print": capture}
    exec(compile(code.replace(README_BASE, base), str(SNIPPETS / f"{name}.py"), "exec"), namespace)
    return namespace, printed


def versions_line(code: str) -> str:
    """The recipe's `# tested with: ...` line (each recipe states its tested versions)."""
    found = re.findall(r"^# tested with: (.+)$", code, flags=re.M)
    assert len(found) == 1, "each recipe states the versions it was tested with"
    return found[0]


@pytest.fixture
def photos(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, bytes]:
    """The recipes' working directory, holding photos/{bicycle,cat,mountain}.png: bytes by path."""
    monkeypatch.chdir(tmp_path)
    write_pictures(Path("photos"))
    return {f"photos/{name}": (Path("photos") / name).read_bytes() for name in PICTURES}


def served_vector(picture: bytes, dims: int = 768) -> np.ndarray[Any, Any]:
    """What the gateway serves for a PNG sent as an image part: the fake's vector, truncated."""
    full = fake_vectors.vector_for_parts([FakePart.from_bytes(picture, "image/png")], model=MODEL)
    head = np.asarray(full[:dims], dtype=np.float64)
    return head / np.linalg.norm(head)
