"""Media inputs: decode, sniff, measure and check what a client sends, before any upstream spend."""

from gateway.media.base64_codec import decode_base64, decode_data_uri, is_data_uri
from gateway.media.limits import check_limits
from gateway.media.parts import media_part
from gateway.media.sniff import SUPPORTED, normalize_mime, sniff_mime

__all__ = [
    "SUPPORTED",
    "check_limits",
    "decode_base64",
    "decode_data_uri",
    "is_data_uri",
    "media_part",
    "normalize_mime",
    "sniff_mime",
]
