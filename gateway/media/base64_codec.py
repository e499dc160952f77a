"""base64 in either alphabet, padded or not, and `data:` URIs, decoded strictly."""

from __future__ import annotations

import binascii
import re
import urllib.parse

from gateway.errors import InvalidRequest

# URL-safe to standard alphabet, and whitespace (MIME line breaks) dropped.
_TO_STANDARD = bytes.maketrans(b"-_", b"+/")
_WHITESPACE = b" \t\r\n\v\f"
_DATA_URI = re.compile(r"data:(?P<mime>[^,;]*)(?P<params>(?:;[^,;]*)*),", re.IGNORECASE)


def decode_base64(text: str, *, param: str) -> bytes:
    """Standard or URL-safe base64, with or without `=` padding; garbage is a 400 naming `param`."""
    if len(text) % 4 == 0:
        # The common spelling (standard, padded, one line) decodes without copies.
        try:
            return binascii.a2b_base64(text, strict_mode=True)
        except (binascii.Error, ValueError):
            pass
    try:
        raw = text.encode("ascii")
    except UnicodeEncodeError:
        raise InvalidRequest(
            f"`{param}` is not valid base64: it contains non-ASCII characters", param=param
        ) from None
    raw = raw.translate(_TO_STANDARD, _WHITESPACE).rstrip(b"=")
    if len(raw) % 4 == 1:
        raise InvalidRequest(
            f"`{param}` is not valid base64: its length cannot be a whole number of bytes",
            param=param,
        )
    raw += b"=" * (-len(raw) % 4)
    try:
        return binascii.a2b_base64(raw, strict_mode=True)
    except binascii.Error as exc:
        raise InvalidRequest(f"`{param}` is not valid base64: {exc}", param=param) from None


def is_data_uri(uri: str) -> bool:
    """Whether `uri` is a `data:` URI."""
    return uri[:5].lower() == "data:"


def decode_data_uri(uri: str, *, param: str) -> tuple[str, bytes]:
    """(declared MIME, decoded bytes) of a `data:<mime>[;base64],<payload>` URI."""
    match = _DATA_URI.match(uri)
    if match is None:
        raise InvalidRequest(
            f"`{param}` is not a valid data URI (expected data:<mime>;base64,<data>)", param=param
        )
    params = [p.strip().lower() for p in match["params"].split(";") if p.strip()]
    payload = uri[match.end() :]
    if "base64" in params:
        return match["mime"].strip(), decode_base64(payload, param=param)
    return match["mime"].strip(), urllib.parse.unquote_to_bytes(payload)
