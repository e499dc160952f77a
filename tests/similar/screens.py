"""Screenshots for the near-duplicate tests, rendered once per session."""

from __future__ import annotations

import base64
import functools
from dataclasses import replace
from typing import Any

from PIL import Image

from bench.near_sets import Frame, png, render

BASE = Frame(page=2, tab=1, minute=7)
STATES = {
    "base": BASE,
    "caret": replace(BASE, caret=False),
    "banner": replace(BASE, banner="ERROR: payment failed. Your card was declined."),
    "row": replace(BASE, extra=((230, 156, "ERROR: payment failed"),)),
    "other": replace(BASE, page=9),
}


@functools.cache
def screen(name: str, note: str = "") -> bytes:
    """The PNG of a named state; a `note` (a PNG text chunk) makes other bytes, same pixels."""
    return png(image(name), note=note)


@functools.cache
def image(name: str) -> Image.Image:
    """The rendered state."""
    return render(STATES[name])


def openai_image(data: bytes) -> dict[str, Any]:
    """An OpenAI-route image input."""
    uri = "data:image/png;base64," + base64.b64encode(data).decode()
    return {"type": "image_url", "image_url": {"url": uri}}


def gemini_image(data: bytes) -> dict[str, Any]:
    """A Gemini-route inline image part."""
    return {"inlineData": {"mimeType": "image/png", "data": base64.b64encode(data).decode()}}
