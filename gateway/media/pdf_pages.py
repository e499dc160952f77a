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
        pages, problem = (0, "") if locked else _count_pages(reader, budget)
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
    """Spend what pypdf will spend indexing the file, before it starts (C-speed counts only).

    Each `obj` keyword is an object a repair scan reads; each xref table is read entry by entry.
    """
    budget.spend(data.count(b"obj"))
    pos = data.find(b"xref")
    while pos >= 0:
        budget.spend()
        if data[pos - 5 : pos] != b"start":
            end = data.find(b"trailer", pos)
            budget.spend(((end if end >= 0 else len(data)) - pos) // _XREF_ENTRY_BYTES)
        pos = data.find(b"xref", pos + 4)


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


def _count_pages(reader: Any, budget: ScanBudget) -> tuple[int, str]:
    """(leaf pages, problem) from walking /Root /Pages with an explicit stack, never recursion.

    A /Pages node reached twice is a loop (or a bomb of shared subtrees): refused, not re-walked.
    """
    from pypdf.generic import ArrayObject, DictionaryObject, IndirectObject

    stack: list[Any] = [reader.trailer["/Root"].get_object().get("/Pages")]
    seen: set[tuple[int, int]] = set()
    pages = 0
    while stack:
        budget.spend(_NODE_STEPS)
        item = stack.pop()
        node = item.get_object() if item is not None else None
        if not isinstance(node, DictionaryObject):
            return 0, "the PDF's page tree holds something that is not a page"
        kind, kids = node.get("/Type"), node.get("/Kids")
        if kind == "/Pages" or (kind is None and kids is not None):
            if isinstance(item, IndirectObject):
                if (item.idnum, item.generation) in seen:
                    return 0, "the PDF's page tree has a loop"
                seen.add((item.idnum, item.generation))
            kids = kids.get_object() if kids is not None else None
            if not isinstance(kids, ArrayObject):
                return 0, "a node of the PDF's page tree has no /Kids array"
            stack.extend(kids)
        elif kind in ("/Page", None):
            pages += 1
    return pages, ""
