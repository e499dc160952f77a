"""Token ids (int[], int[][]) decoded with the vendored cl100k_base, offline; LangChain's defaults."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import pytest_asyncio

from gateway.content.tokens import cl100k_base, decode_token_ids, install_tiktoken_cache
from gateway.fake import FakeGemini
from tests.conftest import Gateway, make_settings, next_case, served, unit

MODEL = "gemini-embedding-2"
HELLO_WORLD = [15339, 1917]  # cl100k_base for "hello world"


def test_vendored_file_is_cl100k_base() -> None:
    encoding = cl100k_base()
    assert encoding.encode("hello world") == HELLO_WORLD
    assert encoding.n_vocab == 100277
    assert decode_token_ids(encoding.encode("naïve café 東京"), param="input") == "naïve café 東京"


async def test_token_ids_are_the_same_entry_as_their_text(gateway: Gateway) -> None:
    as_text = await gateway.embed(model=MODEL, input="hello world", encoding_format="float")
    as_ids = await gateway.embed(model=MODEL, input=[HELLO_WORLD], encoding_format="float")
    flat = await gateway.embed(model=MODEL, input=HELLO_WORLD, encoding_format="float")
    assert as_ids.status_code == flat.status_code == 200, as_ids.text
    assert gateway.fake.items_received == 1
    assert gateway.cache_entries() == 1
    assert gateway.fake.calls[0].items[0].text == "hello world"
    assert as_ids.json()["data"][0]["embedding"] == as_text.json()["data"][0]["embedding"]
    assert len(flat.json()["data"]) == 1


async def test_int_matrix_is_one_embedding_per_row_in_order(gateway: Gateway) -> None:
    encoding = cl100k_base()
    rows = [encoding.encode(t) for t in ("first text", "second text", "third")]
    response = await gateway.embed(model=MODEL, input=rows, encoding_format="float")
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert [d["index"] for d in data] == [0, 1, 2]
    for row, text in zip(data, ("first text", "second text", "third"), strict=True):
        want = unit(gateway.fake.vector_for_text(text))
        assert np.allclose(row["embedding"], want, atol=1e-6)


async def test_a_long_token_chunk_is_judged_by_its_token_count(gateway: Gateway) -> None:
    # LangChain cuts long documents into chunks of 8191 cl100k tokens; their text is longer than
    # 4 bytes per token, so a bytes-based estimate would refuse them.
    encoding = cl100k_base()
    ids = encoding.encode(" extraordinary" * 9000)[:8191]
    assert len(decode_token_ids(ids, param="input").encode()) / 4 > 8192
    ok = await gateway.embed(model=MODEL, input=[ids])
    assert ok.status_code == 200, ok.text
    over = await gateway.embed(model=MODEL, input=[encoding.encode(" extraordinary" * 9000)[:8193]])
    assert over.status_code == 400
    assert over.json()["error"]["param"] == "input[0]"
    assert gateway.fake.items_received == 1


BAD: list[tuple[str, Any, str]] = [
    ("id past the vocabulary", [[15339, 100277]], "input[0][1]"),
    ("negative id", [[-1]], "input[0][0]"),
    ("reserved gap id", [[100261]], "input[0][0]"),
    ("empty token array", [[]], "input[0]"),
    ("boolean is not a token", [[True, 2]], "input[0][0]"),
    ("mixed ints and strings", [[1, "a"]], "input[0][0]"),
    ("top-level id past the vocabulary", [5, 10**12], "input[1]"),
]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def refusing(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Gateway]:
    """One gateway for every BAD case: each is refused before anything is stored or sent."""
    cache = tmp_path_factory.mktemp("bad-token-ids") / "cache"
    async with served(make_settings(cache), FakeGemini()) as shared:
        yield shared


@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.parametrize(("name", "input", "param"), BAD, ids=[b[0] for b in BAD])
async def test_bad_token_ids_are_400_naming_the_id(
    refusing: Gateway, name: str, input: Any, param: str
) -> None:
    gateway = next_case(refusing)
    response = await gateway.embed(model=MODEL, input=input)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == param
    assert gateway.fake.items_received == 0


_NO_NETWORK = """
import socket

def refuse(*args, **kwargs):
    raise OSError("network disabled for this test")

socket.socket.connect = refuse
socket.socket.connect_ex = refuse
socket.create_connection = refuse
socket.getaddrinfo = refuse
"""


def _offline_python(code: str, cache_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TIKTOKEN_CACHE_DIR": str(cache_dir), "PYTHONPATH": os.getcwd()}
    for proxy in ("HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy"):
        env.pop(proxy, None)
    command = [sys.executable, "-c", _NO_NETWORK + textwrap.dedent(code)]
    if (
        shutil.which("unshare")
        and subprocess.run(["unshare", "-n", "true"], check=False).returncode == 0
    ):
        command = ["unshare", "-n", *command]  # no network namespace at all, where allowed
    return subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=120, check=False
    )


def test_tiktoken_never_touches_the_network(tmp_path: Path) -> None:
    cache = tmp_path / "empty-tiktoken-cache"
    cache.mkdir()
    ours = _offline_python(
        """
        from gateway.content.tokens import decode_token_ids
        print(decode_token_ids([15339, 1917], param="input"))
        """,
        cache,
    )
    assert ours.returncode == 0, ours.stderr
    assert ours.stdout.strip() == "hello world"
    assert list(cache.iterdir()) == []  # nothing written to tiktoken's cache either
    # The sandbox is real: plain tiktoken, which downloads its file, fails in it.
    plain = _offline_python("import tiktoken; tiktoken.get_encoding('cl100k_base')", cache)
    assert plain.returncode != 0


async def test_langchain_default_openai_embeddings_work_unchanged(
    gateway: Gateway, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from langchain_openai import OpenAIEmbeddings  # here: importing it costs ~1.3 s per worker

    # LangChain tokenises client-side with tiktoken; the gateway ships the file it needs.
    install_tiktoken_cache(tmp_path / "tiktoken")
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path / "tiktoken"))
    embeddings = OpenAIEmbeddings(
        model=MODEL,
        api_key="sk-client-key",  # type: ignore[arg-type]
        base_url=f"{gateway.http.base_url}/v1",
        http_async_client=gateway.http,
        max_retries=0,
    )
    sent: list[Any] = []

    async def record(request: httpx.Request) -> None:
        sent.append(json.loads(request.content)["input"])

    gateway.http.event_hooks["request"].append(record)
    docs = ["hello world", "", "a second document"]
    vectors = await embeddings.aembed_documents(docs)
    query = await embeddings.aembed_query("hello world")
    # What LangChain sent: token ids for the documents, then a lone "" for the empty one.
    assert sent[0][0] == HELLO_WORLD and all(type(t) is int for row in sent[0] for t in row)
    assert "" in sent
    assert len(vectors) == 3
    assert all(abs(np.linalg.norm(v) - 1.0) < 1e-4 for v in vectors)  # "" is not a zero vector
    received = [item.text for call in gateway.fake.calls for item in call.items]
    assert sorted(received) == ["", "a second document", "hello world"]
    assert np.allclose(vectors[0], unit(gateway.fake.vector_for_text("hello world")), atol=1e-5)
    assert np.allclose(query, vectors[0], atol=1e-6)
