"""Canonical content: Parts and Contents as the gateway keys, counts and sends them upstream."""

from __future__ import annotations

import math

import msgspec

# Google bills media at fixed rates per unit; text is estimated (see estimate_tokens).
TOKENS_PER_IMAGE = 258
TOKENS_PER_PDF_PAGE = 258
TOKENS_PER_VIDEO_SECOND = 66
TOKENS_PER_AUDIO_SECOND = 25
MODALITIES = ("text", "image", "audio", "video", "pdf")


class Part(msgspec.Struct, frozen=True, gc=False):
    """One part of a Content: text, or decoded media bytes with a sniffed MIME type."""

    kind: str
    mime_type: str = "text/plain"
    text: str = ""
    data: bytes = b""
    uri: str = ""
    pages: int = 0
    seconds: float = 0.0

    @classmethod
    def of_text(cls, text: str) -> Part:
        """A text part."""
        return cls(kind="text", text=text)


class Content(msgspec.Struct, frozen=True, gc=False):
    """One embedding's worth of input: ordered parts that the model fuses into one vector."""

    parts: tuple[Part, ...]

    @classmethod
    def of_text(cls, text: str) -> Content:
        """A text-only Content."""
        return cls(parts=(Part.of_text(text),))

    @property
    def modality(self) -> str:
        """`text`, one media kind, or `mixed`."""
        if len(self.parts) == 1:
            return self.parts[0].kind
        kinds = {p.kind for p in self.parts}
        return kinds.pop() if len(kinds) == 1 else "mixed"

    @property
    def payload_bytes(self) -> int:
        """Bytes this Content carries (text as UTF-8)."""
        return sum(len(p.data) + len(p.text) for p in self.parts)


class EmbedParams(msgspec.Struct, frozen=True, gc=False):
    """Everything besides the content that changes the upstream vector (and so the key)."""

    model: str
    task_type: str | None = None
    title: str | None = None
    dims: int | None = None
    namespace: str = ""
    # Vertex AI only; None = not sent (Vertex's own default)
    auto_truncate: bool | None = None
    document_ocr: bool | None = None
    audio_track_extraction: bool | None = None

    @property
    def vertex_options(self) -> tuple[bool | None, bool | None, bool | None]:
        return (self.auto_truncate, self.document_ocr, self.audio_track_extraction)


def estimate_tokens(content: Content) -> int:
    """Tokens as Google bills them: media at fixed rates, text estimated at 4 UTF-8 bytes each."""
    total = 0
    for part in content.parts:
        if part.kind == "text":
            total += max(1, math.ceil(len(part.text.encode("utf-8", "surrogatepass")) / 4))
        elif part.kind == "image":
            total += TOKENS_PER_IMAGE
        elif part.kind == "pdf":
            total += TOKENS_PER_PDF_PAGE * max(1, part.pages)
        elif part.kind == "video":
            total += TOKENS_PER_VIDEO_SECOND * max(1, math.ceil(part.seconds))
        elif part.kind == "audio":
            total += TOKENS_PER_AUDIO_SECOND * max(1, math.ceil(part.seconds))
    return total


_QUERY_TASKS = {
    "RETRIEVAL_QUERY": "search result",
    "QUESTION_ANSWERING": "question answering",
    "FACT_VERIFICATION": "fact checking",
    "CODE_RETRIEVAL_QUERY": "code retrieval",
    "CLASSIFICATION": "classification",
    "CLUSTERING": "clustering",
    "SEMANTIC_SIMILARITY": "sentence similarity",
}
TASK_TYPES = (*_QUERY_TASKS, "RETRIEVAL_DOCUMENT")


def with_task_prefix(content: Content, task_type: str, title: str | None) -> Content:
    """Put the task into the text, as Gemini Embedding 2 expects (it ignores `taskType`)."""
    if task_type == "RETRIEVAL_DOCUMENT":
        prefix = f"title: {title or 'none'} | text: "
    else:
        prefix = f"task: {_QUERY_TASKS[task_type]} | query: "
    first = content.parts[0]
    if first.kind == "text":
        return Content(parts=(Part.of_text(prefix + first.text), *content.parts[1:]))
    return Content(parts=(Part.of_text(prefix.rstrip()), *content.parts))
