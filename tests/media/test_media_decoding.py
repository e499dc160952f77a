"""base64 and data URIs, magic-byte sniffing and the media_part contract the Gemini route relies on."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.config import MediaSettings
from gateway.errors import InvalidRequest, PayloadTooLarge, UnsupportedMedia
from gateway.media import decode_base64, decode_data_uri, media_part, sniff_mime
from tests import media_samples as media

PAYLOAD = bytes(range(256)) * 4 + b"\xfb\xff"  # exercises both alphabets' special characters
SETTINGS = MediaSettings()


@pytest.mark.parametrize(
    "spelling",
    [
        base64.b64encode(PAYLOAD).decode(),
        base64.b64encode(PAYLOAD).decode().rstrip("="),
        base64.urlsafe_b64encode(PAYLOAD).decode(),
        base64.urlsafe_b64encode(PAYLOAD).decode().rstrip("="),
        base64.encodebytes(PAYLOAD).decode(),  # MIME line breaks
    ],
    ids=["standard", "standard-unpadded", "urlsafe", "urlsafe-unpadded", "with-newlines"],
)
def test_base64_either_alphabet_padded_or_not(spelling: str) -> None:
    assert decode_base64(spelling, param="p") == PAYLOAD


@pytest.mark.parametrize("garbage", ["abc*def", "a", "ab=c", "é=", "AAAA=AAA"])
def test_broken_base64_is_a_400_naming_the_param(garbage: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        decode_base64(garbage, param="input[2].input_audio")
    assert caught.value.param == "input[2].input_audio"
    assert caught.value.http_status == 400


def test_data_uri_with_and_without_base64() -> None:
    assert decode_data_uri(media.data_uri(PAYLOAD, "image/png"), param="p") == (
        "image/png",
        PAYLOAD,
    )
    assert decode_data_uri("data:text/plain,hello%20there", param="p") == (
        "text/plain",
        b"hello there",
    )
    with pytest.raises(InvalidRequest):
        decode_data_uri("data:image/png;base64", param="p")


@pytest.mark.parametrize(
    ("data", "mime"),
    [
        (media.png(), "image/png"),
        (media.jpeg(), "image/jpeg"),
        (media.wav(0.5), "audio/wav"),
        (media.mp3(0.5), "audio/mp3"),
        (media.mp3(0.5)[20:], "audio/mp3"),  # no ID3 tag: a bare frame header
        (media.mp4(1.0), "video/mp4"),
        (media.mp4(1.0, brand=b"qt  "), "video/mov"),
        (media.pdf(1), "application/pdf"),
        (media.gif(), "image/gif"),
        (b"\x1aE\xdf\xa3" + bytes(40), "video/webm"),
        (b"RIFF\x00\x00\x00\x00WEBPVP8 ", "image/webp"),
        (b"\x00\x00\x00\x18ftypM4A \x00\x00\x00\x00", "audio/mp4"),
        (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00", "image/heic"),
        (b"OggS\x00\x02", "audio/ogg"),
        ("plain text, even ünïcödé".encode(), "text/plain"),
        (bytes([0, 1, 2, 3, 200, 100]) * 10, "application/octet-stream"),
    ],
)
def test_sniffing_reads_the_bytes(data: bytes, mime: str) -> None:
    assert sniff_mime(data) == mime


def test_media_part_fills_kind_type_pages_and_seconds() -> None:
    pdf = media_part(media.pdf(2), "application/pdf", param="p", settings=SETTINGS)
    assert (pdf.kind, pdf.mime_type, pdf.pages) == ("pdf", "application/pdf", 2)
    wav = media_part(media.wav(3.0), "audio/x-wav", param="p", settings=SETTINGS)
    assert (wav.kind, wav.mime_type, wav.seconds) == ("audio", "audio/wav", 3.0)
    video = media_part(media.mp4(12.5), None, param="p", settings=SETTINGS)
    assert (video.kind, video.seconds) == ("video", 12.5)
    # MP4 and MOV are siblings: declaring one for the other is not a contradiction.
    mov = media_part(media.mp4(2.0, brand=b"qt  "), "video/mp4", param="p", settings=SETTINGS)
    assert mov.mime_type == "video/mov"
    generic = media_part(media.png(), "application/octet-stream", param="p", settings=SETTINGS)
    assert generic.mime_type == "image/png"


def test_media_part_errors() -> None:
    with pytest.raises(InvalidRequest, match=r"declared as image/png but its bytes are image/jpeg"):
        media_part(media.jpeg(), "image/png", param="p", settings=SETTINGS)
    with pytest.raises(UnsupportedMedia, match="image/gif"):
        media_part(media.gif(), None, param="p", settings=SETTINGS)
    with pytest.raises(InvalidRequest, match="truncated"):
        media_part(media.jpeg()[:-10], None, param="p", settings=SETTINGS)
    corrupt = bytearray(media.png())
    corrupt[40] ^= 0xFF
    with pytest.raises(InvalidRequest, match="bad CRC"):
        media_part(bytes(corrupt), None, param="p", settings=SETTINGS)
    with pytest.raises(InvalidRequest, match="PDF"):
        media_part(media.pdf(2)[:200], None, param="p", settings=SETTINGS)
    with pytest.raises(InvalidRequest, match="must hold an image"):
        media_part(media.pdf(1), None, param="p", settings=SETTINGS, kind="image")
    with pytest.raises(InvalidRequest, match="empty"):
        media_part(b"", None, param="p", settings=SETTINGS)
    with pytest.raises(PayloadTooLarge) as too_big:
        media_part(media.png(), None, param="p", settings=MediaSettings(max_part_bytes=10))
    assert too_big.value.http_status == 413


@given(data=st.binary(max_size=300), urlsafe=st.booleans(), padded=st.booleans())
def test_base64_round_trips_any_bytes_in_any_spelling(
    data: bytes, urlsafe: bool, padded: bool
) -> None:
    text = (base64.urlsafe_b64encode if urlsafe else base64.b64encode)(data).decode()
    assert decode_base64(text if padded else text.rstrip("="), param="p") == data
