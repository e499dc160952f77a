"""Multimodal inputs through the OpenAI route: the grammar, content keys, limits, what upstream got."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import pytest_asyncio
from litestar.testing import AsyncTestClient

from gateway.config import Settings
from gateway.fake import FakeGemini
from gateway.fake.records import FakePart
from tests import media_samples as media
from tests.conftest import Gateway, make_app, make_settings, next_case, served, unit

MODEL = "gemini-embedding-2"
PNG = media.png()
JPEG = media.jpeg()
PNG_URI = media.data_uri(PNG, "image/png")


def image(uri: str) -> dict[str, Any]:
    return {"type": "image_url", "image_url": {"url": uri}}


@pytest.fixture
def media_root(tmp_path: Path) -> Path:
    root = tmp_path / "media"
    root.mkdir()
    return root


@pytest.fixture
def settings(tmp_path: Path, media_root: Path) -> Settings:
    return media_settings(tmp_path, media_root)


def media_settings(tmp_path: Path, media_root: Path) -> Settings:
    """Local files under media_root; remote fetch on for hosts that must still be refused."""
    return make_settings(
        tmp_path / "cache",
        media={
            "allowed_root": str(media_root),
            "remote_fetch": True,
            "remote_allowed_hosts": ["127.0.0.1", "169.254.169.254", "localhost"],
            "max_part_bytes": 1024 * 1024,
            "max_request_bytes": 3 * 1024 * 1024,
        },
    )


async def embed_ok(gateway: Gateway, input: Any) -> dict[str, Any]:
    response = await gateway.embed(model=MODEL, input=input, encoding_format="float")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def vector(body: dict[str, Any], index: int = 0) -> np.ndarray[Any, Any]:
    return np.asarray(body["data"][index]["embedding"], dtype=np.float64)


async def test_interleaved_parts_are_one_fused_vector_of_the_exact_bytes(gateway: Gateway) -> None:
    body = await embed_ok(gateway, [["a red square", image(PNG_URI)]])
    assert len(body["data"]) == 1
    [call] = gateway.fake.calls
    [item] = call.items
    assert [p.kind for p in item.parts] == ["text", "inline"]
    assert item.parts[0].text == "a red square"
    assert item.parts[1].mime_type == "image/png"
    assert item.parts[1].data == PNG
    want = unit(gateway.fake.vector_for_parts(list(item.parts)))
    assert np.allclose(vector(body), want, atol=1e-6)


async def test_every_part_type_reaches_upstream_with_its_sniffed_type_in_order(
    gateway: Gateway,
) -> None:
    wav, mp3, mp4, mov, pdf = (
        media.wav(2.0),
        media.mp3(3.0),
        media.mp4(4.0),
        media.mp4(5.0, brand=b"qt  "),
        media.pdf(2),
    )
    inputs = [
        image(PNG_URI),
        {"type": "image_url", "image_url": media.data_uri(JPEG, "image/jpeg")},
        {
            "type": "input_audio",
            "input_audio": {"data": base64.b64encode(wav).decode(), "format": "wav"},
        },
        {
            "type": "input_audio",
            "input_audio": {"data": base64.b64encode(mp3).decode(), "format": "mp3"},
        },
        {"type": "video_url", "video_url": {"url": media.data_uri(mp4, "video/mp4")}},
        {"type": "video_url", "video_url": media.data_uri(mov, "video/quicktime")},
        {
            "type": "file",
            "file": {"file_data": media.data_uri(pdf, "application/pdf"), "filename": "a.pdf"},
        },
        {"content": ["caption", image(PNG_URI)]},
    ]
    body = await embed_ok(gateway, inputs)
    assert [d["index"] for d in body["data"]] == list(range(8))
    items = [item for call in gateway.fake.calls for item in call.items]
    received = [
        [(p.kind, p.mime_type, p.data if p.kind == "inline" else p.text) for p in i.parts]
        for i in items
    ]
    assert received == [
        [("inline", "image/png", PNG)],
        [("inline", "image/jpeg", JPEG)],
        [("inline", "audio/wav", wav)],
        [("inline", "audio/mp3", mp3)],
        [("inline", "video/mp4", mp4)],
        [("inline", "video/mov", mov)],
        [("inline", "application/pdf", pdf)],
        [("text", None, "caption"), ("inline", "image/png", PNG)],
    ]


async def test_usage_counts_media_as_google_bills_it(gateway: Gateway) -> None:
    body = await embed_ok(
        gateway,
        [
            [image(PNG_URI), image(PNG_URI)],  # 2 x 258
            {
                "type": "file",
                "file": {"file_data": media.data_uri(media.pdf(3), "application/pdf")},
            },
            {"type": "video_url", "video_url": media.data_uri(media.mp4(10.0), "video/mp4")},
            {
                "type": "input_audio",
                "input_audio": {"data": base64.b64encode(media.wav(4.0)).decode()},
            },
        ],
    )
    # 258 per image or PDF page, 66 per second of video, 25 per second of audio
    assert body["usage"]["prompt_tokens"] == 2 * 258 + 3 * 258 + 10 * 66 + 4 * 25
    # Stable whether cached or not.
    again = await embed_ok(
        gateway, [{"type": "video_url", "video_url": media.data_uri(media.mp4(10.0), "video/mp4")}]
    )
    assert again["usage"]["prompt_tokens"] == 660


async def test_usage_says_when_it_is_an_estimate(gateway: Gateway) -> None:
    video = {"type": "video_url", "video_url": media.data_uri(media.mp4(2.0), "video/mp4")}
    for _ in range(2):  # the second answer comes from the response memo: same headers
        media_only = await gateway.embed(model="gemini-embedding-2", input=[video])
        assert media_only.status_code == 200
        assert "x-usage-estimated" not in media_only.headers  # Google's published rates
        mixed = await gateway.embed(model="gemini-embedding-2", input=[[video, "a caption"]])
        assert mixed.headers["x-usage-estimated"] == "text"
    assert mixed.headers["x-cache"] == "HIT"


async def test_one_png_however_spelled_is_one_cache_entry(
    gateway: Gateway, media_root: Path
) -> None:
    (media_root / "square.png").write_bytes(PNG)
    std = base64.b64encode(PNG).decode()
    urlsafe = base64.urlsafe_b64encode(PNG).decode().rstrip("=")
    spellings = [
        PNG_URI,
        f"data:image/png;base64,{urlsafe}",
        std,  # bare base64, standard alphabet, padded
        urlsafe,  # bare base64, URL-safe alphabet, unpadded
        "square.png",  # a path under the root
        str(media_root / "square.png"),
        (media_root / "square.png").as_uri(),  # file://
    ]
    vectors = []
    for spelling in spellings:
        body = await embed_ok(gateway, [image(spelling)])
        vectors.append(vector(body))
    assert gateway.cache_entries() == 1
    assert gateway.fake.items_received == 1
    assert all(np.array_equal(v, vectors[0]) for v in vectors)
    # The bytes decide, not the spelling: the raw audio/file routes hash the same way.
    await embed_ok(gateway, [{"type": "file", "file": {"file_data": PNG_URI}}])
    assert gateway.cache_entries() == 1


async def test_different_media_and_different_order_are_different_entries(gateway: Gateway) -> None:
    other = media.png(color=(1, 2, 3))
    await embed_ok(gateway, [image(PNG_URI)])
    await embed_ok(gateway, [image(media.data_uri(other, "image/png"))])
    assert gateway.cache_entries() == 2
    first = await embed_ok(gateway, [["a caption", image(PNG_URI)]])
    second = await embed_ok(gateway, [[image(PNG_URI), "a caption"]])
    assert gateway.cache_entries() == 4
    assert not np.allclose(vector(first), vector(second))
    items = [item for call in gateway.fake.calls for item in call.items]
    assert [p.kind for p in items[-1].parts] == ["inline", "text"]


async def test_limits_at_the_edge_are_accepted(gateway: Gateway) -> None:
    six = [image(PNG_URI)] * 6
    pdf6 = {"type": "file", "file": {"file_data": media.data_uri(media.pdf(6), "application/pdf")}}
    video120 = {"type": "video_url", "video_url": media.data_uri(media.mp4(120.0), "video/mp4")}
    wav80 = {
        "type": "input_audio",
        "input_audio": {
            "data": base64.b64encode(media.wav(80.0, rate=800)).decode(),
            "format": "wav",
        },
    }
    body = await embed_ok(gateway, [six, [pdf6, "text"], video120, wav80])
    assert len(body["data"]) == 4
    assert gateway.fake.items_received == 4


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


BROKEN_PNG = PNG[: len(PNG) - 20]
WEBM = b"\x1aE\xdf\xa3" + bytes(64)
TOO_BIG = b"\x89PNG\r\n\x1a\n" + bytes(1024 * 1024)

BAD: list[tuple[str, Any, int, str]] = [
    (
        "broken base64",
        ["x", [image("data:image/png;base64,iVBOR*w0KGgo")]],
        400,
        "input[1][0].image_url",
    ),
    ("truncated png", [image(media.data_uri(BROKEN_PNG, "image/png"))], 400, "input[0].image_url"),
    (
        "text labelled image/png",
        [image(media.data_uri(b"just some text\n", "image/png"))],
        400,
        "input[0].image_url",
    ),
    (
        "jpeg labelled image/png",
        [image(media.data_uri(JPEG, "image/png"))],
        400,
        "input[0].image_url",
    ),
    (
        "wav sent as image",
        [image(media.data_uri(media.wav(1.0), "audio/wav"))],
        400,
        "input[0].image_url",
    ),
    (
        "mp3 declared as wav",
        [{"type": "input_audio", "input_audio": {"data": b64(media.mp3(1.0)), "format": "wav"}}],
        400,
        "input[0].input_audio",
    ),
    (
        "7th image",
        ["a", "b", "c", [*[image(PNG_URI)] * 3, "text", *[image(PNG_URI)] * 4]],
        400,
        "input[3][7].image_url",
    ),
    (
        "7-page pdf",
        [
            [
                "see",
                {
                    "type": "file",
                    "file": {"file_data": media.data_uri(media.pdf(7), "application/pdf")},
                },
            ]
        ],
        400,
        "input[0][1].file",
    ),
    (
        "two pdfs",
        [
            [
                {
                    "type": "file",
                    "file": {"file_data": media.data_uri(media.pdf(1), "application/pdf")},
                }
            ]
            * 2
        ],
        400,
        "input[0][1].file",
    ),
    (
        "121 s video",
        [{"type": "video_url", "video_url": media.data_uri(media.mp4(121.0), "video/mp4")}],
        400,
        "input[0].video_url",
    ),
    (
        "81 s wav",
        [
            {
                "type": "input_audio",
                "input_audio": {"data": b64(media.wav(81.0, rate=800)), "format": "wav"},
            }
        ],
        400,
        "input[0].input_audio",
    ),
    ("gif", [image(media.data_uri(media.gif(), "image/gif"))], 400, "input[0].image_url"),
    (
        "webm",
        [{"type": "video_url", "video_url": media.data_uri(WEBM, "video/webm")}],
        400,
        "input[0].video_url",
    ),
    (
        "mp4 without moov",
        [{"type": "video_url", "video_url": media.data_uri(media.mp4(5.0)[:32], "video/mp4")}],
        400,
        "input[0].video_url",
    ),
    ("path outside root", [image("/etc/passwd")], 400, "input[0].image_url"),
    ("dot-dot outside root", [image("../cache/x.png")], 400, "input[0].image_url"),
    ("url to 127.0.0.1", [image("https://127.0.0.1/cat.png")], 400, "input[0].image_url"),
    (
        "url to metadata",
        [image("https://169.254.169.254/latest/meta-data/")],
        400,
        "input[0].image_url",
    ),
    ("host resolving to loopback", [image("https://localhost/cat.png")], 400, "input[0].image_url"),
    ("host not allowed", [image("https://example.com/cat.png")], 400, "input[0].image_url"),
    ("plain http", [image("http://127.0.0.1/cat.png")], 400, "input[0].image_url"),
    ("ftp scheme", [image("ftp://example.com/cat.png")], 400, "input[0].image_url"),
    (
        "part over max_part_bytes",
        [image(media.data_uri(TOO_BIG, "image/png"))],
        413,
        "input[0].image_url",
    ),
    (
        "request over max_request_bytes",
        [image(media.data_uri(media.png(size=(600, 600)), "image/png"))],
        0,
        "",
    ),
    ("empty text part", [[{"type": "text", "text": ""}]], 400, "input[0][0].text"),
    ("unknown part type", [{"type": "image_file", "image_file": {}}], 400, "input[0].type"),
    (
        "bad audio format",
        [{"type": "input_audio", "input_audio": {"data": "AAAA", "format": "ogg"}}],
        400,
        "input[0].input_audio.format",
    ),
    ("file_id", [{"type": "file", "file": {"file_id": "file-abc"}}], 400, "input[0].file.file_id"),
    ("nested list", [[["a"]]], 400, "input[0][0]"),
    ("empty content", [{"content": []}], 400, "input[0].content"),
    ("text over 8192 tokens", [["short", "word " * 9000]], 400, "input[0][1]"),
]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def refusing(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Gateway]:
    """One gateway for every BAD case: each is refused before anything is stored or sent."""
    where = tmp_path_factory.mktemp("bad-media")
    (where / "media").mkdir()
    async with served(media_settings(where, where / "media"), FakeGemini()) as shared:
        yield shared


@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.parametrize(("name", "input", "status", "param"), BAD, ids=[b[0] for b in BAD])
async def test_bad_media_is_a_4xx_naming_the_part_and_costs_nothing(
    refusing: Gateway, name: str, input: Any, status: int, param: str
) -> None:
    gateway = next_case(refusing)
    if name == "request over max_request_bytes":
        bigs = [media.data_uri(media.noise_png(540, 540, seed), "image/png") for seed in range(4)]
        input = ["a", *[image(big) for big in bigs]]
        status, param = 413, "input[4].image_url"
    response = await gateway.embed(model=MODEL, input=input)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["param"] == param
    assert error["type"] == "invalid_request_error"
    assert response.headers["x-should-retry"] == "false"
    assert gateway.fake.items_received == 0
    assert gateway.cache_entries() == 0


async def test_declared_and_sniffed_types_are_both_named(gateway: Gateway) -> None:
    response = await gateway.embed(model=MODEL, input=[image(media.data_uri(JPEG, "image/png"))])
    message = response.json()["error"]["message"]
    assert "image/png" in message and "image/jpeg" in message


async def test_symlink_out_of_the_root_is_refused(
    gateway: Gateway, media_root: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "secret.png"
    outside.write_bytes(PNG)
    (media_root / "link.png").symlink_to(outside)
    (media_root / "inside.png").write_bytes(PNG)
    (media_root / "ok-link.png").symlink_to(media_root / "inside.png")
    refused = await gateway.embed(model=MODEL, input=[image("link.png")])
    assert refused.status_code == 400
    assert refused.json()["error"]["param"] == "input[0].image_url"
    assert "outside the allowed root" in refused.json()["error"]["message"]
    await embed_ok(gateway, [image("ok-link.png")])  # a link that stays inside is fine
    assert gateway.fake.items_received == 1


async def test_text_only_model_refuses_media(gateway: Gateway) -> None:
    response = await gateway.embed(model="gemini-embedding-001", input=[image(PNG_URI)])
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "input[0].image_url"
    assert gateway.fake.items_received == 0


@pytest.fixture
async def default_gateway(tmp_path: Path, fake: FakeGemini) -> AsyncIterator[Gateway]:
    async with AsyncTestClient(make_app(make_settings(tmp_path / "plain"), fake)) as client:
        yield Gateway(client, fake)


async def test_local_files_and_remote_fetch_are_off_by_default(
    default_gateway: Gateway, media_root: Path
) -> None:
    (media_root / "square.png").write_bytes(PNG)
    local = await default_gateway.embed(model=MODEL, input=[image(str(media_root / "square.png"))])
    assert local.status_code == 400
    assert "allowed_root" in local.json()["error"]["message"]
    remote = await default_gateway.embed(model=MODEL, input=[image("https://example.com/a.png")])
    assert remote.status_code == 400
    assert "remote_fetch" in remote.json()["error"]["message"]
    assert default_gateway.fake.items_received == 0


async def test_media_parts_keep_fake_vectors_distinct_by_bytes(gateway: Gateway) -> None:
    # Sanity of the comparison above: a different image is a different vector.
    a = await embed_ok(gateway, [image(PNG_URI)])
    b = await embed_ok(gateway, [image(media.data_uri(media.png(color=(9, 9, 9)), "image/png"))])
    assert not np.allclose(vector(a), vector(b))
    want = unit(gateway.fake.vector_for_parts([FakePart.from_bytes(PNG, "image/png")]))
    assert np.allclose(vector(a), want, atol=1e-6)


async def test_big_media_is_decoded_off_the_event_loop(
    gateway: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gateway.api.openai import input as openai_input

    on_loop: list[bool] = []
    real_build = openai_input._build

    def build(*args: Any) -> Any:
        try:
            asyncio.get_running_loop()
            on_loop.append(True)
        except RuntimeError:  # a worker thread has no running loop
            on_loop.append(False)
        return real_build(*args)

    monkeypatch.setattr(openai_input, "_build", build)
    await embed_ok(gateway, ["small text"])
    await embed_ok(gateway, [image(media.data_uri(media.noise_png(300, 300), "image/png"))])
    # Small requests stay on the loop (no thread hop); a 270 KB image is decoded in a worker.
    assert on_loop == [True, False]


async def test_a_file_that_changes_behind_the_same_request_is_read_again(
    gateway: Gateway, media_root: Path
) -> None:
    path = media_root / "shot.png"
    path.write_bytes(PNG)
    first = vector(await embed_ok(gateway, [image("shot.png")]))
    path.write_bytes(JPEG)  # the same request text, new bytes: never a replayed answer
    second = vector(await embed_ok(gateway, [image("shot.png")]))
    assert gateway.fake.items_received == 2
    assert float(first @ second) < 0.999
    again = vector(await embed_ok(gateway, [image("shot.png")]))  # unchanged: a cache hit
    np.testing.assert_array_equal(again, second)
    assert gateway.fake.items_received == 2
