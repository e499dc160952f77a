"""Which dialect a path speaks: Google's for the Gemini routes, OpenAI's everywhere else."""

from __future__ import annotations


def is_gemini_path(path: str) -> bool:
    """Gemini-dialect routes: `/v1beta/...` and `/v1/models/{model}:method`."""
    if path.startswith("/v1beta/"):
        return True
    return path.startswith("/v1/models/") and ":" in path.rsplit("/", 1)[-1]
