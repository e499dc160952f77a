"""What the bytes are: the MIME type read from magic numbers, never from the declared type."""

from __future__ import annotations

# The types the gateway can measure and send upstream, spelled as Google documents them.
SUPPORTED: dict[str, str] = {
    "image/png": "image",
    "image/jpeg": "image",
    "audio/wav": "audio",
    "audio/mp3": "audio",
    "video/mp4": "video",
    "video/mov": "video",
    "application/pdf": "pdf",
}
# Declared spellings that mean one of the SUPPORTED types.
_ALIASES = {
    "image/jpg": "image/jpeg",
    "image/pjpeg": "image/jpeg",
    "audio/wave": "audio/wav",
    "audio/x-wav": "audio/wav",
    "audio/vnd.wave": "audio/wav",
    "audio/mpeg": "audio/mp3",
    "audio/mpeg3": "audio/mp3",
    "audio/x-mp3": "audio/mp3",
    "audio/x-mpeg": "audio/mp3",
    "video/quicktime": "video/mov",
    "application/x-pdf": "application/pdf",
}
# Declared types that say nothing about the content: the sniffed type stands.
GENERIC = frozenset({"", "application/octet-stream", "binary/octet-stream"})
# Containers close enough that declaring one for the other is not a contradiction.
_SIBLINGS = {"video/mp4": "video/mov", "video/mov": "video/mp4"}
# ISO-BMFF brands that are not video the model takes (audio-only MP4, HEIF/AVIF stills).
_FTYP_OTHER = {
    b"M4A ": "audio/mp4",
    b"M4B ": "audio/mp4",
    b"M4P ": "audio/mp4",
    b"heic": "image/heic",
    b"heix": "image/heic",
    b"mif1": "image/heif",
    b"msf1": "image/heif",
    b"avif": "image/avif",
    b"avis": "image/avif",
    b"crx ": "image/x-canon-cr3",
}
# Top-level boxes an old QuickTime file may start with instead of `ftyp`.
_QT_FIRST_BOXES = (b"moov", b"wide", b"mdat", b"free", b"skip", b"pnot")


def normalize_mime(declared: str) -> str:
    """Lower-case, without parameters, with common aliases mapped onto the supported spelling."""
    base = declared.split(";", 1)[0].strip().lower()
    return _ALIASES.get(base, base)


def compatible(declared: str, actual: str) -> bool:
    """Whether a declared (normalised) type agrees with the sniffed one."""
    return declared in GENERIC or declared == actual or _SIBLINGS.get(declared) == actual


def sniff_mime(data: bytes) -> str:
    """The MIME type the bytes really are; unsupported types get their own name when known."""
    head = data[:64]
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith(b"%PDF-"):
        return "application/pdf"
    if head.startswith(b"RIFF") and len(head) >= 12:
        return {b"WAVE": "audio/wav", b"WEBP": "image/webp", b"AVI ": "video/x-msvideo"}.get(
            head[8:12], "application/octet-stream"
        )
    if head[4:8] == b"ftyp":
        return _ftyp(data)
    if head[4:8] in _QT_FIRST_BOXES:
        return "video/mov"
    if head.startswith(b"ID3") or _mp3_sync(head):
        return "audio/mp3"
    return _other(head, data)


def tag_name(kind: bytes) -> str:
    """A four-byte box or chunk type for a message: its letters, or hex when not printable."""
    text = kind.decode("latin-1")
    return text if text.isascii() and text.isprintable() else kind.hex()


def _ftyp(data: bytes) -> str:
    major = data[8:12]
    if major in _FTYP_OTHER:
        return _FTYP_OTHER[major]
    return "video/mov" if major == b"qt  " else "video/mp4"


def _mp3_sync(head: bytes) -> bool:
    """An MPEG audio frame header: 11 sync bits, a real version, Layer III, a real bitrate."""
    if len(head) < 4 or head[0] != 0xFF or head[1] & 0xE0 != 0xE0:
        return False
    version, layer = (head[1] >> 3) & 3, (head[1] >> 1) & 3
    bitrate, rate = head[2] >> 4, (head[2] >> 2) & 3
    return version != 1 and layer == 1 and bitrate not in (0, 15) and rate != 3


_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"\x1aE\xdf\xa3", "video/webm"),
    (b"OggS", "audio/ogg"),
    (b"fLaC", "audio/flac"),
    (b"BM", "image/bmp"),
    (b"II*\x00", "image/tiff"),
    (b"MM\x00*", "image/tiff"),
    (b"FORM", "audio/aiff"),
    (b"PK\x03\x04", "application/zip"),
    (b"\x00\x00\x01\x00", "image/x-icon"),
    (b"\x00\x00\x01\xba", "video/mpeg"),
)


def _other(head: bytes, data: bytes) -> str:
    for magic, mime in _SIGNATURES:
        if head.startswith(magic):
            return mime
    if len(head) >= 2 and head[0] == 0xFF and head[1] & 0xF6 == 0xF0:
        return "audio/aac"
    if _looks_like_text(data[:4096]):
        return "text/plain"
    return "application/octet-stream"


def _looks_like_text(sample: bytes) -> bool:
    if b"\x00" in sample:
        return False
    try:
        sample.decode("utf-8")
    except UnicodeDecodeError as exc:
        # A multi-byte character cut at the sample's end is still text.
        return exc.start >= len(sample) - 3
    return True
