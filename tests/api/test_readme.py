"""The README's own snippets, run as written against the in-process gateway and FakeGemini.

Python blocks are executed unchanged: only `openai.OpenAI` gets the in-process app as its HTTP
client (the real SDK otherwise), and each `print(...)  # out` must print `out`. Shell blocks
that start a server are checked for the wait on /healthz, and the multimodal curl body is sent.
"""

from __future__ import annotations

import base64
import io
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import openai
import pytest
from litestar.testing import TestClient

from gateway.fake import FakeGemini
from tests.conftest import make_app, make_settings

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
WAIT = "curl -sf --retry 30 --retry-delay 1 --retry-all-errors -o /dev/null http://127.0.0.1:{port}/healthz"


def blocks(lang: str) -> list[str]:
    return re.findall(rf"^```{lang}\n(.*?)^```$", README, flags=re.M | re.S)


def block(lang: str, marker: str) -> str:
    found = [b for b in blocks(lang) if marker in b]
    assert len(found) == 1, f"{len(found)} {lang} blocks hold {marker!r}"
    return found[0]


def printed_comments(code: str) -> list[str]:
    """What each `print(...)` line says it prints: its own trailing comment, or the next line's."""
    lines = code.splitlines()
    out = []
    for i, line in enumerate(lines):
        if not line.startswith("print("):
            continue
        if "  # " in line:
            out.append(line.split("  # ", 1)[1].strip())
        else:
            out.append(lines[i + 1].removeprefix("#").strip())
    return out


@pytest.fixture
def local_openai(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeGemini]:
    """openai.OpenAI (and so LangChain) talks to an in-process gateway, whatever its base_url."""
    fake = FakeGemini()
    app = make_app(make_settings(tmp_path / "cache"), fake)
    with TestClient(app) as client:

        class LocalOpenAI(openai.OpenAI):
            def __init__(self, **kwargs: Any) -> None:
                if kwargs.get("http_client") is None:
                    kwargs["http_client"] = client
                super().__init__(**kwargs)

        monkeypatch.setattr(openai, "OpenAI", LocalOpenAI)
        monkeypatch.chdir(ROOT)
        yield fake


def run(code: str) -> tuple[dict[str, Any], list[str]]:
    """Execute a block; its print() calls are collected (the gateway's own log lines are not)."""
    printed: list[str] = []

    def capture(*args: Any, **kwargs: Any) -> None:
        out = io.StringIO()
        print(*args, **kwargs, file=out)
        printed.extend(out.getvalue().splitlines())

    namespace: dict[str, Any] = {"__name__": "readme", "print": capture}
    exec(compile(code, "README.md", "exec"), namespace)
    return namespace, printed


@pytest.mark.parametrize(
    "marker",
    [
        "print(len(vectors.data[0].embedding))",  # Clients: the OpenAI SDK
        'open("examples/media/cat.png", "rb")',  # Multimodal: text and a fused text+image
        'extra_body={"output_dtype": "int8"}',  # Quantised: int8 as floats and as base64
    ],
)
def test_python_block_prints_what_it_says(local_openai: FakeGemini, marker: str) -> None:
    code = block("python", marker)
    _, printed = run(code)
    assert printed == printed_comments(code)
    assert local_openai.items_received > 0


def test_multimodal_sdk_block_sends_the_sample_png(local_openai: FakeGemini) -> None:
    run(block("python", 'open("examples/media/cat.png", "rb")'))
    parts = [p for call in local_openai.calls for item in call.items for p in item.parts]
    png = (ROOT / "examples/media/cat.png").read_bytes()
    assert [(p.kind, p.mime_type) for p in parts] == [
        ("text", None),
        ("text", None),
        ("inline", "image/png"),
    ]
    assert parts[2].data == png


def test_langchain_offline_block(
    local_openai: FakeGemini, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    code = block("python", "emb.embed_documents(")
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", "unset-by-the-block")  # restored after the test
    namespace, _ = run(code.replace("/tmp/tiktoken", str(tmp_path / "tiktoken")))
    vectors = namespace["vectors"]
    assert [len(v) for v in vectors] == [3072, 3072, 3072]  # the block's "3 vectors of 3072"
    assert all(abs(float(np.linalg.norm(v)) - 1) < 1e-5 for v in vectors)  # "" is a unit vector
    texts = [item.text for call in local_openai.calls for item in call.items]
    assert sorted(texts) == sorted(["hello world", "", "a second document"])


def test_multimodal_curl_body_gives_what_the_block_says(tmp_path: Path) -> None:
    code = block("bash", "multimodal.json")
    root = re.search(r'GATEWAY_MEDIA_ALLOWED_ROOT="\$PWD/(\S+)"', code)
    body = re.search(r"<<EOF\n(.*?)\nEOF\n", code, flags=re.S)
    assert root and body
    text = body.group(1).replace("$PWD", str(ROOT))
    text = re.sub(
        r"\$\(base64 < (\S+) \| tr -d '\\n'\)",
        lambda m: base64.b64encode((ROOT / m.group(1)).read_bytes()).decode(),
        text,
    )
    fake = FakeGemini()
    settings = make_settings(tmp_path / "cache", media={"allowed_root": str(ROOT / root[1])})
    with TestClient(make_app(settings, fake)) as client:
        response = client.post("/v1/embeddings", json=json.loads(text))
    assert response.status_code == 200, response.text
    answer = response.json()
    said = re.search(r"^# (\d+ \{.*\})$", code, flags=re.M)
    assert said and f"{len(answer['data'])} {answer['usage']}" == said[1]
    kinds = [[p.mime_type for p in item.parts] for call in fake.calls for item in call.items]
    assert kinds == [["image/png"], ["video/mp4"], ["application/pdf"], ["audio/wav"], [None]]


def test_every_background_server_is_waited_for_and_the_extra_ones_stopped() -> None:
    started = 0
    for code in blocks("bash"):
        lines = code.splitlines()
        for i, line in enumerate(lines):
            if not re.search(r"\bgateway serve\b.*&\s*(#.*)?$", line):
                continue
            started += 1
            port = re.search(r"--port (\d+)", line)
            assert lines[i + 1] == WAIT.format(port=port[1] if port else 8080), line
            if port:  # any server but the one the README starts at the top is stopped
                assert any(ln.startswith("kill $!") for ln in lines[i + 2 :]), line
    assert started >= 5


def test_every_sample_the_readme_names_ships() -> None:
    named = set(re.findall(r"examples/[\w./-]*\w", README))
    assert named
    assert [n for n in sorted(named) if not (ROOT / n).exists()] == []
