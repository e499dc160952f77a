"""What FakeGemini received: parts, items (one per requested vector) and calls."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

PartKind = Literal["text", "inline", "file"]


@dataclass(frozen=True, slots=True)
class FakePart:
    """One decoded part: text, inline bytes (already base64-decoded) or a file URI."""

    kind: PartKind
    text: str | None = None
    mime_type: str | None = None
    data: bytes | None = None
    uri: str | None = None

    @classmethod
    def from_text(cls, text: str) -> FakePart:
        return cls(kind="text", text=text)

    @classmethod
    def from_bytes(cls, data: bytes, mime_type: str) -> FakePart:
        return cls(kind="inline", data=data, mime_type=mime_type)

    @classmethod
    def from_uri(cls, uri: str, mime_type: str | None = None) -> FakePart:
        return cls(kind="file", uri=uri, mime_type=mime_type)


@dataclass(frozen=True, slots=True)
class FakeItem:
    """One embedding request (one Content, hence one vector) as the fake understood it."""

    parts: list[FakePart]
    model: str = "gemini-embedding-2"
    task_type: str | None = None
    title: str | None = None
    output_dimensionality: int | None = None

    @property
    def text(self) -> str:
        """The text parts joined by a space; handy in `poison` predicates."""
        return " ".join(p.text for p in self.parts if p.text is not None)


@dataclass(slots=True)
class FakeCall:
    """One HTTP request the fake received; `status` stays 0 until it is answered."""

    method: str
    path: str
    model: str | None
    api_key: str | None
    status: int
    items: list[FakeItem] = field(default_factory=list)
