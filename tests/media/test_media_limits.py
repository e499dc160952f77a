"""Per-Content limits come from the model table: a new model changes config, not code."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config import MediaSettings, ModelSpec, load_settings
from gateway.content.model import Content, Part
from gateway.errors import InvalidRequest, UnsupportedMedia
from gateway.media import check_limits, media_part
from tests import media_samples as media

SETTINGS = MediaSettings()
IMAGE = media_part(media.png(), None, param="p", settings=SETTINGS)
MOV = media_part(media.mp4(30.0, brand=b"qt  "), None, param="p", settings=SETTINGS)
WAV = media_part(media.wav(50.0, rate=800), None, param="p", settings=SETTINGS)

TOML = """
[embeddings]
default_model = "future-embedding"

[[models]]
id = "future-embedding"
max_images = 2
max_audio_seconds = 40.0
media_types = ["image/png", "image/jpeg", "audio/wav", "video/mp4"]
max_tokens = 100
"""


@pytest.fixture
def future(tmp_path: Path) -> ModelSpec:
    path = tmp_path / "config.toml"
    path.write_text(TOML)
    spec = load_settings(path, {}).model("future-embedding")
    assert spec is not None
    return spec


def test_the_model_table_sets_the_limits(future: ModelSpec) -> None:
    default = ModelSpec(id="gemini-embedding-2")
    three = Content(parts=(IMAGE, IMAGE, IMAGE))
    check_limits(three, default, param="input[0]")
    with pytest.raises(UnsupportedMedia) as caught:
        check_limits(three, future, param="input[0]")
    assert caught.value.param == "input[0].parts[2]"  # the Gemini route's default naming
    with pytest.raises(UnsupportedMedia, match="video/mov"):
        check_limits(Content(parts=(MOV,)), future, param="r", part_params=["r.video_url"])
    check_limits(Content(parts=(WAV,)), default, param="r")
    with pytest.raises(UnsupportedMedia, match=r"50\.0 s"):
        check_limits(Content(parts=(WAV,)), future, param="r")


def test_text_tokens_are_counted_with_cl100k_only_when_they_could_matter(future: ModelSpec) -> None:
    check_limits(Content.of_text("word " * 99), future, param="input[0]")  # 99 tokens
    with pytest.raises(InvalidRequest, match="tokens") as caught:
        check_limits(
            Content(parts=(Part.of_text("word " * 60), IMAGE, Part.of_text("word " * 60))),
            future,
            param="input[4]",
            part_params=["input[4][0]", "input[4][1].image_url", "input[4][2]"],
        )
    assert caught.value.param == "input[4][2]"  # the part where the total passes the limit
    assert caught.value.code == "context_length_exceeded"
    # Token ids the client counted itself are judged by that count.
    long_text = Content.of_text("x" * 1000)
    check_limits(long_text, future, param="input[0]", known_tokens={0: 100})
    with pytest.raises(InvalidRequest):
        check_limits(long_text, future, param="input[0]", known_tokens={0: 101})


def test_text_only_models_refuse_media() -> None:
    text_only = ModelSpec(id="gemini-embedding-001", multimodal=False, max_images=0)
    with pytest.raises(UnsupportedMedia, match="text only"):
        check_limits(Content(parts=(Part.of_text("a"), IMAGE)), text_only, param="input[0]")
