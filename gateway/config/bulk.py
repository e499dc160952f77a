"""[bulk]: OpenAI-style batch jobs run through Gemini's Batch API at the batch price."""

from __future__ import annotations

from typing import Annotated, Literal

from msgspec import Meta

from gateway.config.types import Cap, Delay, Section

Fallback = Literal["none", "online"]


class BulkSettings(Section, frozen=True):
    """Polling, the inline/file split, the fallback for a failed Google batch, and the price."""

    # Google's samples poll every 30 s; turnaround is up to 24 h.
    poll_interval_s: Annotated[float, Meta(ge=0.001, le=86400)] = 30.0
    # The inline request must stay under 20 MB; above this the misses go as an uploaded file.
    inline_max_bytes: Annotated[int, Meta(ge=1, le=20_000_000)] = 16_000_000
    # Inline results come back inside one Operation (3072 floats an item): past this many items
    # the misses go as a file, whose results are a file read line by line.
    inline_max_items: Annotated[int, Meta(ge=1, le=100_000)] = 1000
    upload_chunk_bytes: Annotated[int, Meta(ge=1, le=64 * 1024 * 1024)] = 8 * 1024 * 1024
    max_file_bytes: Cap = 2 * 1024 * 1024 * 1024  # one input file (Google's own file cap)
    max_lines: Cap = 1_000_000
    fallback: Fallback = "none"  # "online": items of a failed/expired batch go the normal way
    batch_price_share: Annotated[float, Meta(ge=0, le=1)] = 0.5  # of [pricing]
    expire_after_s: Delay = 24 * 3600.0  # completion_window "24h"
