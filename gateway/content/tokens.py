"""Token ids -> text with tiktoken's cl100k_base, built from the BPE file the package ships.

tiktoken would download this file at run time, which fails offline; the Encoding is built here
directly from the vendored ranks, so tiktoken never opens a connection.
"""

from __future__ import annotations

import base64
import functools
import hashlib
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from gateway.errors import InvalidRequest

if TYPE_CHECKING:
    import tiktoken

BPE_FILE = "cl100k_base.tiktoken"
# The SHA-256 tiktoken itself pins for cl100k_base (tiktoken_ext/openai_public.py).
BPE_SHA256 = "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7"
_PATTERN = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+"""
    r"""|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""
)
_RANKS = 100256  # ids 0..100255 are byte-pair ranks; the special tokens follow
_SPECIAL = {
    "<|endoftext|>": 100257,
    "<|fim_prefix|>": 100258,
    "<|fim_middle|>": 100259,
    "<|fim_suffix|>": 100260,
    "<|endofprompt|>": 100276,
}


def load_ranks(blob: bytes) -> dict[bytes, int]:
    """Parse a `.tiktoken` file (one `base64-token rank` per line), checking its pinned hash."""
    if hashlib.sha256(blob).hexdigest() != BPE_SHA256:
        raise RuntimeError(f"gateway/data/{BPE_FILE} does not match its pinned SHA-256")
    ranks: dict[bytes, int] = {}
    for line in blob.splitlines():
        if line:
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    if len(ranks) != _RANKS:
        raise RuntimeError(f"gateway/data/{BPE_FILE} has {len(ranks)} ranks, not {_RANKS}")
    return ranks


@functools.cache
def cl100k_base() -> tiktoken.Encoding:
    """The cl100k_base Encoding, loaded once from gateway/data (never from the network)."""
    import tiktoken

    blob = resources.files("gateway").joinpath("data", BPE_FILE).read_bytes()
    return tiktoken.Encoding(
        name="cl100k_base",
        pat_str=_PATTERN,
        mergeable_ranks=load_ranks(blob),
        special_tokens=_SPECIAL,
    )


def decode_token_ids(ids: Sequence[int], *, param: str) -> str:
    """The text of cl100k_base token ids; an id outside the vocabulary is a 400 naming it."""
    if not ids:
        raise InvalidRequest(f"`{param}` is an empty token array", param=param)
    encoding = cl100k_base()
    try:
        return encoding.decode(list(ids))
    except (KeyError, OverflowError, ValueError):
        pass
    specials = set(_SPECIAL.values())
    for index, token in enumerate(ids):
        if not (0 <= token < _RANKS or token in specials):
            raise InvalidRequest(
                f"`{param}[{index}]` is {token}, not a cl100k_base token id",
                param=f"{param}[{index}]",
            ) from None
    raise InvalidRequest(f"`{param}` cannot be decoded as cl100k_base tokens", param=param)


def count_text_tokens(text: str, *, stop_above: int) -> int:
    """cl100k_base tokens in `text`; counting stops once past `stop_above` (a lower bound then).

    Long texts are counted in slices, so an oversized text costs no more than the limit's worth.
    """
    encoding = cl100k_base()
    total = 0
    for start in range(0, len(text), _SLICE_CHARS):
        total += len(encoding.encode_ordinary(text[start : start + _SLICE_CHARS]))
        if total > stop_above:
            break
    return total


_SLICE_CHARS = 32 * 1024


# Where tiktoken itself downloads cl100k_base from; it caches under sha1(url) in TIKTOKEN_CACHE_DIR.
_TIKTOKEN_URL = "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken"


def install_tiktoken_cache(directory: str | Path) -> Path:
    """Put the vendored file where tiktoken looks (TIKTOKEN_CACHE_DIR), for offline clients.

    LangChain's OpenAIEmbeddings tokenises with tiktoken before it calls the gateway; with
    TIKTOKEN_CACHE_DIR pointing at `directory`, it finds cl100k_base there instead of downloading.
    """
    target = (
        Path(directory) / hashlib.sha1(_TIKTOKEN_URL.encode(), usedforsecurity=False).hexdigest()
    )
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(resources.files("gateway").joinpath("data", BPE_FILE).read_bytes())
    return target
