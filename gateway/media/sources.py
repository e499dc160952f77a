"""Where a media part's bytes come from: a data URI, raw base64, a local file or a remote URL."""

from __future__ import annotations

import re

import msgspec

from gateway.config import MediaSettings
from gateway.errors import InvalidRequest, PayloadTooLarge
from gateway.media.base64_codec import decode_base64, decode_data_uri, is_data_uri
from gateway.media.local_files import read_local_file
from gateway.media.sniff import sniff_mime

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
_WINDOWS_DRIVE = re.compile(r"^[A-Za-z]:[\\/]")
_BASE64_TEXT = re.compile(r"[A-Za-z0-9+/_\-\s]+={0,2}")
_MIN_RAW_BASE64 = 16


class MediaSource(msgspec.Struct, kw_only=True):
    """One media part as the client spelled it, until its bytes are loaded."""

    param: str
    kind: str | None = None  # the kind the field implies (image_url -> image)
    uri: str = ""  # data:, file://, a path, or https://
    base64: str = ""  # raw base64 (input_audio.data)
    declared: str | None = None  # a MIME the client stated
    fetched: bytes | None = None  # set once a remote URL is fetched

    @property
    def remote(self) -> bool:
        """Whether the bytes must come over the network."""
        return self.uri[:8].lower() == "https://" or self.uri[:7].lower() == "http://"

    @property
    def local(self) -> bool:
        """Whether the bytes come from a local file (blocking I/O)."""
        return bool(self.uri) and not self.remote and not is_data_uri(self.uri)

    @property
    def encoded_size(self) -> int:
        """Characters or bytes to decode: what decides whether decoding leaves the event loop."""
        if self.fetched is not None:
            return len(self.fetched)
        return len(self.base64) or len(self.uri)


def load_bytes(source: MediaSource, settings: MediaSettings) -> tuple[bytes, str | None]:
    """(bytes, declared MIME) of a source whose remote bytes, if any, are already fetched."""
    param = source.param
    if source.fetched is not None:
        return source.fetched, source.declared
    payload = source.base64 or source.uri
    inline = bool(source.base64) or is_data_uri(source.uri)
    # A base64 text far over the part cap is refused before it is decoded.
    if inline and len(payload) // 4 * 3 > settings.max_part_bytes + 3 * 1024:
        raise PayloadTooLarge(
            f"`{param}` decodes to about {len(payload) // 4 * 3:,} bytes; at most "
            f"{settings.max_part_bytes:,} are allowed per media part ([media] max_part_bytes)",
            param=param,
        )
    if source.base64:
        if is_data_uri(source.base64):
            mime, data = decode_data_uri(source.base64, param=param)
            return data, source.declared or mime or None
        return decode_base64(source.base64, param=param), source.declared
    if is_data_uri(source.uri):
        mime, data = decode_data_uri(source.uri, param=param)
        return data, mime or None
    foreign = _SCHEME.match(source.uri) and not _WINDOWS_DRIVE.match(source.uri)
    if foreign and source.uri[:7].lower() != "file://":
        scheme = source.uri.split(":", 1)[0]
        raise InvalidRequest(
            f"`{param}` uses the URL scheme `{scheme}`; use data:, https:// (with "
            "[media] remote_fetch), file:// or a path (with [media] allowed_root)",
            param=param,
        )
    raw = _raw_base64(source.uri)
    if raw is not None:
        return raw, None
    return read_local_file(source.uri, param=param, settings=settings), None


def _raw_base64(text: str) -> bytes | None:
    """Bytes of a bare base64 string (no `data:` prefix) that decodes to a known media type.

    A short or undecodable string, or one that decodes to unrecognised bytes, is taken as a path.
    """
    if len(text) < _MIN_RAW_BASE64 or not _BASE64_TEXT.fullmatch(text):
        return None
    try:
        data = decode_base64(text, param="")
    except InvalidRequest:
        return None
    return data if sniff_mime(data) not in ("text/plain", "application/octet-stream") else None
