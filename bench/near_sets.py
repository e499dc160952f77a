"""Inputs for near-duplicate reuse: generated UI frames and adversarial pairs (bench and tests).

Frames are 1280x800 RGB renders of an app window (title bar, tabs, sidebar, text, icons, a
clock, a caret), drawn with Pillow's default font, deterministic for a given state.
"""

from __future__ import annotations

import io
import random
from collections.abc import Iterator
from dataclasses import dataclass, field, replace

from PIL import Image, ImageDraw, ImageFont

WIDTH, HEIGHT = 1280, 800
_VOCABULARY = """report invoice customer order status shipping account settings profile message
inbox project review draft budget meeting schedule task update release build deploy server metrics
latency dashboard search filter export import archive folder document"""
WORDS = tuple(_VOCABULARY.split())


@dataclass(frozen=True)
class Frame:
    """One screen state; every field is something an agent's screenshot may show."""

    page: int = 0
    tab: int = 0
    scroll: int = 0
    minute: int = 0
    caret: bool = True
    hover: int = -1
    toast: str = ""
    banner: str = ""
    dialog: str = ""
    title_word: str = "Dashboard"
    icon: int = 0
    checkbox: bool = False
    extra: tuple[tuple[int, int, str], ...] = field(default=())


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def render(frame: Frame) -> Image.Image:
    """The frame as an RGB image."""
    rng = random.Random(frame.page * 7919 + frame.tab)
    image = Image.new("RGB", (WIDTH, HEIGHT), (246, 247, 249))
    draw = ImageDraw.Draw(image)
    small, body, big = _font(13), _font(15), _font(20)
    draw.rectangle((0, 0, WIDTH, 36), fill=(40, 44, 52))
    draw.text((16, 9), f"Acme {frame.title_word} - page {frame.page}", font=body, fill="white")
    draw.text((WIDTH - 70, 10), f"{9 + frame.minute // 60:02d}:{frame.minute % 60:02d}",
              font=body, fill="white")  # fmt: skip
    for t in range(4):
        x = 220 + t * 150
        fill = (255, 255, 255) if t == frame.tab else (225, 228, 233)
        draw.rectangle((x, 44, x + 140, 72), fill=fill, outline=(200, 204, 210))
        draw.text((x + 12, 50), rng.choice(WORDS).title(), font=small, fill=(30, 30, 30))
    draw.rectangle((0, 36, 200, HEIGHT), fill=(232, 235, 240))
    for i in range(18):
        y = 90 + i * 36
        if i == frame.hover:
            draw.rectangle((6, y - 6, 194, y + 24), fill=(218, 222, 230))
        colour = [(66, 133, 244), (219, 68, 55), (244, 180, 0), (15, 157, 88)][(i + frame.icon) % 4]
        draw.ellipse((14, y, 30, y + 16), fill=colour)
        draw.text((40, y), rng.choice(WORDS).title(), font=small, fill=(50, 50, 50))
    draw.text((230, 92), " ".join(rng.choice(WORDS) for _ in range(4)).title(), font=big,
              fill=(20, 20, 20))  # fmt: skip
    lines = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(6, 14))) for _ in range(60)]
    for row, line in enumerate(lines[frame.scroll : frame.scroll + 26]):
        draw.text((230, 132 + row * 24), line, font=body, fill=(60, 60, 60))
    box = (230, 770, 250, 790)
    draw.rectangle(box, outline=(90, 90, 90), width=2)
    if frame.checkbox:
        draw.line((233, 780, 239, 787, 248, 772), fill=(15, 157, 88), width=3)
    draw.text((258, 772), "Remember this choice", font=small, fill=(50, 50, 50))
    draw.rectangle((900, 92, 1240, 118), outline=(180, 184, 190), fill="white")
    draw.text((908, 97), "search", font=small, fill=(60, 60, 60))
    if frame.caret:
        draw.rectangle((956, 96, 957, 114), fill=(20, 20, 20))
    if frame.banner:
        draw.rectangle((200, 72, WIDTH, 86), fill=(250, 240, 240))
        draw.text((230, 72), frame.banner, font=small, fill=(200, 30, 30))
    if frame.toast:
        draw.rounded_rectangle((980, 700, 1260, 760), 8, fill=(50, 50, 56))
        draw.text((996, 720), frame.toast, font=body, fill="white")
    if frame.dialog:
        draw.rectangle((440, 280, 840, 480), fill="white", outline=(120, 120, 120), width=2)
        draw.text((470, 320), frame.dialog, font=big, fill=(20, 20, 20))
        draw.rectangle((700, 430, 820, 464), fill=(66, 133, 244))
        draw.text((735, 438), "OK", font=body, fill="white")
    for x, y, text in frame.extra:
        draw.text((x, y), text, font=body, fill=(200, 30, 30))
    return image


def png(image: Image.Image, *, level: int = 1, note: str = "") -> bytes:
    """PNG bytes at a compression level, with a text chunk when `note` is set (either way:
    other bytes, the same pixels)."""
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    if note:
        info.add_text("Comment", note)
    out = io.BytesIO()
    image.save(out, format="PNG", compress_level=level, pnginfo=info)
    return out.getvalue()


def replay(frames: int, seed: int = 0) -> Iterator[Frame]:
    """An agent's screen over `frames` steps: the caret blinks every frame, the clock ticks every
    60, hover and scroll move now and then, a toast shows for a few frames, and every ~50 frames
    the agent switches page or tab."""
    rng = random.Random(seed)
    state = Frame()
    toast_left = 0
    for step in range(frames):
        state = replace(state, caret=step % 2 == 0, minute=step // 60)
        if step and step % 50 == 0:
            state = replace(state, page=state.page + 1, tab=rng.randrange(4), scroll=0, hover=-1)
        roll = rng.random()
        if roll < 0.05:
            state = replace(state, hover=rng.randrange(18))
        elif roll < 0.08:
            state = replace(state, scroll=min(30, state.scroll + rng.randint(1, 3)))
        elif roll < 0.09:
            state, toast_left = replace(state, toast="Saved"), 4
        if toast_left:
            toast_left -= 1
            if not toast_left:
                state = replace(state, toast="")
        yield state


# Meaningful changes that must never be served another frame's vector: (name, changed frame).
def image_pairs(count: int = 60) -> Iterator[tuple[str, Frame, Frame]]:
    """(kind, base, changed) screenshot pairs whose change matters."""
    rng = random.Random(1)
    kinds = ("banner", "dialog", "title", "icon", "checkbox", "toast", "error-row")
    for n in range(count):
        base = Frame(page=n, tab=n % 4, minute=n)
        kind = kinds[n % len(kinds)]
        if kind == "banner":
            changed = replace(base, banner="ERROR: payment failed. Your card was declined.")
        elif kind == "dialog":
            changed = replace(base, dialog="Delete all files?")
        elif kind == "title":
            changed = replace(base, title_word=rng.choice(("Billing", "Admin", "Reports")))
        elif kind == "icon":
            changed = replace(base, icon=1)
        elif kind == "checkbox":
            changed = replace(base, checkbox=True)
        elif kind == "toast":
            changed = replace(base, toast="Upload failed")
        else:
            changed = replace(base, extra=((230, 132 + 24 * (n % 20), "ERROR: payment failed"),))
        yield kind, base, changed


_NAMES = ("Alice", "Bob", "Carmen", "Deepak", "Elena", "Farid", "Grace", "Hiro")
_THINGS = ("billing", "shipping", "payroll", "inventory", "security", "latency", "storage")
_UNITS = (("km", "mi"), ("ms", "s"), ("kg", "lb"), ("MB", "GB"), ("mg", "g"))
_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday")
_FILLER = (
    " The notes from the meeting were shared with everyone on the mailing list, and the"
    " questions raised during the discussion will be collected in the usual shared document"
    " so that the people who could not attend can read the answers at their own pace."
)


def _paragraph(slots: dict[str, str], long: bool) -> str:
    text = (
        "{a} reviewed the {thing} report on {day} and found that the measured value was {n} {unit}"
        " {cmp} the target. The team will approve the release after {a} and {b} sign off, and"
        " the rollout can proceed next week if the {thing} checks pass."
    ).format(**slots)
    return text + _FILLER if long else text


def text_pairs(count: int = 240, seed: int = 2) -> Iterator[tuple[str, str, str]]:
    """(kind, base, changed) text pairs that differ in meaning by a small edit."""
    rng = random.Random(seed)
    kinds = (
        "negation", "number", "unit", "entity", "noun", "date", "order", "comparison",
        "modal-negation",
    )  # fmt: skip
    for n in range(count):
        a, b = rng.sample(_NAMES, 2)
        unit, other_unit = rng.choice(_UNITS)
        slots = {
            "a": a, "b": b, "thing": rng.choice(_THINGS), "day": rng.choice(_DAYS),
            "n": str(rng.randint(2, 900)), "unit": unit, "cmp": rng.choice(("above", "below")),
        }  # fmt: skip
        long = n % 3 == 0
        base = _paragraph(slots, long)
        kind = kinds[n % len(kinds)]
        if kind == "negation":
            changed = base.replace("value was", "value was not", 1)
        elif kind == "modal-negation":
            changed = base.replace("The team will approve", "The team won't approve", 1)
        elif kind == "number":
            changed = _paragraph({**slots, "n": str(int(slots["n"]) + 1)}, long)
        elif kind == "unit":
            changed = _paragraph({**slots, "unit": other_unit}, long)
        elif kind == "entity":
            other = next(x for x in _NAMES if x not in (a, b))
            changed = _paragraph({**slots, "b": other}, long)
        elif kind == "noun":
            other = next(x for x in _THINGS if x != slots["thing"])
            changed = base.replace(f"the {slots['thing']} checks", f"the {other} checks", 1)
        elif kind == "date":
            other = _DAYS[(_DAYS.index(slots["day"]) + 1) % len(_DAYS)]
            changed = _paragraph({**slots, "day": other}, long)
        elif kind == "order":
            changed = base.replace(f"after {a} and {b}", f"after {b} and {a}", 1)
        else:
            flipped = "below" if slots["cmp"] == "above" else "above"
            changed = _paragraph({**slots, "cmp": flipped}, long)
        assert changed != base, kind
        yield kind, base, changed


def benign_text_pairs(count: int = 120, seed: int = 3) -> Iterator[tuple[str, str, str]]:
    """(kind, base, changed) pairs that mean the same: cosmetic bytes, punctuation, a typo."""
    import unicodedata

    rng = random.Random(seed)
    kinds = ("crlf", "trailing", "nfd", "punctuation", "typo", "spaces")
    for n in range(count):
        a, b = rng.sample(_NAMES, 2)
        slots = {
            "a": a, "b": b, "thing": rng.choice(_THINGS), "day": rng.choice(_DAYS),
            "n": str(rng.randint(2, 900)), "unit": "km", "cmp": "above",
        }  # fmt: skip
        base = _paragraph(slots, n % 2 == 0).replace(". The team", ".\nThe café team")
        kind = kinds[n % len(kinds)]
        if kind == "crlf":
            changed = base.replace("\n", "\r\n")
        elif kind == "trailing":
            changed = base.replace("\n", "   \n") + "  "
        elif kind == "nfd":
            changed = unicodedata.normalize("NFD", base)
        elif kind == "punctuation":
            changed = base.replace(" and found", ", and found", 1)
        elif kind == "typo":
            changed = base.replace("reviewed", "reveiwed", 1)
        else:
            changed = base.replace(" the ", "  the ", 2)
        yield kind, base, changed
