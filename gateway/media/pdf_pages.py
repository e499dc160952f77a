"""Page count of a PDF, read with a real parser (pypdf)."""

from __future__ import annotations

import io
import logging
import struct


def pdf_page_count(data: bytes) -> int:
    """Pages of the PDF in `data`; ValueError when pypdf cannot read it."""
    from pypdf import PdfReader  # imported on first use: no work at import time
    from pypdf.errors import PyPdfError

    # pypdf logs every repair it makes; a client's broken file is not the gateway's warning.
    logging.getLogger("pypdf").setLevel(logging.ERROR)
    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted and reader.decrypt("") == 0:
            raise ValueError("the PDF is encrypted with a password")
        pages = len(reader.pages)
    except (PyPdfError, KeyError, TypeError, AttributeError, IndexError, struct.error) as exc:
        raise ValueError(f"the PDF cannot be read ({type(exc).__name__})") from None
    if pages < 1:
        raise ValueError("the PDF has no pages")
    return pages
