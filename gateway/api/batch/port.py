"""What the OpenAI Batch and Files routes need from the bulk part (gateway/bulk implements it).

A Protocol here, not an import of gateway.bulk: bulk sits above api (it reuses the embeddings
route's parsing), so the routes reach it through the app's state, typed by this port.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Protocol


class BulkPort(Protocol):
    """OpenAI-shaped files and batches: every method answers the object the API returns."""

    async def create_file(
        self, filename: str, purpose: str | None, chunks: AsyncIterator[bytes]
    ) -> dict[str, Any]: ...

    def delete_file(self, file_id: str) -> None: ...

    def file(self, file_id: str) -> dict[str, Any]: ...

    def files(self, purpose: str | None) -> list[dict[str, Any]]: ...

    def file_content(self, file_id: str) -> Path: ...

    async def create_batch(self, body: dict[str, Any]) -> dict[str, Any]: ...

    def batch(self, batch_id: str) -> dict[str, Any]: ...

    def batches(self, after: str | None, limit: int) -> tuple[list[dict[str, Any]], bool]: ...

    async def cancel_batch(self, batch_id: str) -> dict[str, Any]: ...
