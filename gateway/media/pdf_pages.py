"""Page count of a PDF, read with a real parser (pypdf) under the part's ScanBudget.

pypdf works in Python per object, per xref entry and per page-tree node, so each is charged to
the budget before (or as) pypdf does it; whatever pypdf raises on a client's file is bad input.
"""

from __future__ import annotations

import functools
import inspect
import io
import logging
from typing import Any

from gateway.errors import GatewayError
from gateway.media.budget import ScanBudget

# A page-tree node is an object pypdf finds, reads and parses: about 50 us, where a box or a
# chunk of the other walkers costs about 1 us.
_NODE_STEPS = 25
# pypdf reads object text in Python, byte by byte where it skips whitespace (about 0.2 us each):
# one step per 16 bytes keeps a whole budget's parsing near a third of a second.
_BYTES_PER_STEP = 16
# Bytes of one entry of a classic xref table ("0000000009 00000 n \n").
_XREF_ENTRY_BYTES = 20
# pypdf reads an xref-stream entry in about 3 us: a third of the steps left pays for them.
_XREF_STREAM_SHARE = 3


def pdf_page_count(data: bytes, budget: ScanBudget) -> int:
    """Pages of the PDF in `data`; ValueError when pypdf cannot read it."""
    from pypdf import PdfReader  # imported on first use: no work at import time

    # pypdf logs every repair it makes; a client's broken file is not the gateway's warning.
    logging.getLogger("pypdf").setLevel(logging.ERROR)
    _charge_indexing(data, budget)
    try:
        reader = PdfReader(io.BytesIO(data), strict=False, **_reader_limits(budget.left))
        locked = bool(reader.is_encrypted) and reader.decrypt("") == 0
        pages, problem = (0, "") if locked else _count_pages(reader, data, budget)
    except (GatewayError, MemoryError):
        raise
    except NotImplementedError:
        # pypdf names security handlers and algorithms it lacks this way.
        raise ValueError(
            "the PDF is encrypted with a method the gateway cannot open; send it unencrypted"
        ) from None
    except Exception as exc:  # anything pypdf raises on a client's bytes is bad input
        if _hit_a_limit(exc):  # pypdf's own bounds, set from the budget
            raise budget.exhausted() from None
        raise ValueError(f"the PDF cannot be read ({type(exc).__name__})") from None
    if locked:
        raise ValueError("the PDF is encrypted with a password")
    if problem:
        raise ValueError(problem)
    if pages < 1:
        raise ValueError("the PDF has no pages")
    return pages


def _charge_indexing(data: bytes, budget: ScanBudget) -> None:
    """Spend what pypdf will spend opening the file, before it starts (C-speed scans only).

    Each `obj` keyword is an object a repair scan reads; xref tables are read entry by entry;
    trailers and xref-stream dictionaries are parsed in Python, byte by byte.
    """
    budget.spend(data.count(b"obj"))
    pos = data.find(b"xref")
    while pos >= 0:
        budget.spend()
        if data[pos - 5 : pos] != b"start":
            end = data.find(b"trailer", pos)
            budget.spend(((end if end >= 0 else len(data)) - pos) // _XREF_ENTRY_BYTES)
        pos = data.find(b"xref", pos + 4)
    budget.spend(_text_bytes(data, b"trailer", b"startxref", None) // _BYTES_PER_STEP)
    budget.spend(_text_bytes(data, b"/XRef", b"stream", b"obj") // _BYTES_PER_STEP)


def _text_bytes(data: bytes, mark: bytes, until: bytes, back_to: bytes | None) -> int:
    """Bytes from each `mark` (or the `back_to` before it) to the next `until`, never twice."""
    total, done = 0, 0
    pos = data.find(mark)
    while pos >= 0:
        start = pos
        if back_to is not None:
            start = max(data.rfind(back_to, done, pos), done)
        end = data.find(until, pos)
        end = end if end >= 0 else len(data)
        total += end - start + 1
        done = end
        pos = data.find(mark, max(end, pos + 1))
    return total


@functools.cache
def _reader_knobs() -> frozenset[str]:
    from pypdf import PdfReader

    return frozenset(inspect.signature(PdfReader).parameters)


def _reader_limits(steps: int) -> dict[str, Any]:
    """pypdf's own bound on xref-stream entries (pypdf >= 7), from what the budget has left.

    A few kB of compressed xref stream can list millions of entries (10 s of CPU for 3 M).
    """
    if "xref_stream_maximum_entries" in _reader_knobs():
        return {"xref_stream_maximum_entries": max(steps // _XREF_STREAM_SHARE, 1)}
    return {}


def _hit_a_limit(exc: BaseException | None) -> bool:
    """Whether pypdf stopped at one of its limits (it may wrap that in a PdfReadError)."""
    for _ in range(8):
        if exc is None:
            return False
        if type(exc).__name__ == "LimitReachedError":
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def _count_pages(reader: Any, data: bytes, budget: ScanBudget) -> tuple[int, str]:
    """(leaf pages, problem) from walking /Root /Pages with an explicit stack, never recursion.

    A /Pages node reached twice is a loop (or a bomb of shared subtrees): refused, not re-walked.
    """
    from pypdf.generic import ArrayObject, DictionaryObject, IndirectObject

    resolve = _Resolver(reader, data, budget)
    stack: list[Any] = [resolve(resolve(reader.trailer["/Root"]).get("/Pages"))]
    seen: set[tuple[int, int]] = set()
    pages = 0
    while stack:
        budget.spend(_NODE_STEPS)
        item = stack.pop()
        node = resolve(item)
        if not isinstance(node, DictionaryObject):
            return 0, "the PDF's page tree holds something that is not a page"
        kind, kids = node.get("/Type"), node.get("/Kids")
        if kind == "/Pages" or (kind is None and kids is not None):
            if isinstance(item, IndirectObject):
                if (item.idnum, item.generation) in seen:
                    return 0, "the PDF's page tree has a loop"
                seen.add((item.idnum, item.generation))
            kids = resolve(kids)
            if not isinstance(kids, ArrayObject):
                return 0, "a node of the PDF's page tree has no /Kids array"
            stack.extend(kids)
        elif kind in ("/Page", None):
            pages += 1
    return pages, ""


class _Resolver:
    """Resolves references after charging the bytes pypdf will parse, byte by byte, to do it.

    That is the object's text in the file, or, the first time an object stream is used, all of
    the stream decoded: pypdf 7 parses every object of a stream at once. Padding either with
    megabytes of whitespace otherwise costs seconds (a 68 kB file, 4 s).
    """

    def __init__(self, reader: Any, data: bytes, budget: ScanBudget) -> None:
        self.reader, self.data, self.budget = reader, data, budget
        self.streams: set[int] = set()

    def __call__(self, item: Any) -> Any:
        from pypdf.generic import IndirectObject

        if not isinstance(item, IndirectObject):
            return item
        packed = self.reader.xref_objStm.get(item.idnum) if item.generation == 0 else None
        if packed is None:
            self._charge_text(item.idnum, item.generation, b"endobj")
        elif packed[0] not in self.streams:
            self.streams.add(packed[0])
            self._charge_text(packed[0], 0, b"stream")
            stream: Any = IndirectObject(packed[0], 0, self.reader).get_object()
            # Decoded at C speed, within pypdf's own output limits.
            self.budget.spend(len(stream.get_data()) // _BYTES_PER_STEP)
        return item.get_object()

    def _charge_text(self, number: int, generation: int, until: bytes) -> None:
        offset = self.reader.xref.get(generation, {}).get(number)
        if isinstance(offset, int) and 0 <= offset < len(self.data):
            end = self.data.find(until, offset)
            self.budget.spend(((end if end >= 0 else len(self.data)) - offset) // _BYTES_PER_STEP)
