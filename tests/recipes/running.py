"""Running a README recipe as written: its text, its namespace, what it printed, what it stored."""

from __future__ import annotations

import builtins
import io
import ipaddress
import re
from pathlib import Path
from typing import Any

import numpy as np

from gateway.fake import vectors as fake_vectors
from gateway.fake.records import FakePart
from tests.recipes.pictures import MODEL

SNIPPETS = Path(__file__).parent / "snippets"
README_BASE = "http://127.0.0.1:8080"


def loopback(host: object) -> bool:
    """Whether a host names this machine (only these may be reached from a recipe test)."""
    if host in ("localhost", None):
        return True
    try:
        return ipaddress.ip_address(str(host).split("%")[0]).is_loopback
    except ValueError:
        return False


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


def served_vector(picture: bytes, dims: int = 768) -> np.ndarray[Any, Any]:
    """What the gateway serves for a PNG sent as an image part: the fake's vector, truncated."""
    full = fake_vectors.vector_for_parts([FakePart.from_bytes(picture, "image/png")], model=MODEL)
    head = np.asarray(full[:dims], dtype=np.float64)
    return head / np.linalg.norm(head)
