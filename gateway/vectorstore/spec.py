"""What a collection is: its name, model, size, storage dtype and index parameters."""

from __future__ import annotations

import re

import msgspec

from gateway.errors import InvalidRequest

DTYPES: tuple[str, ...] = ("f32", "f16", "i8", "b1")
METRICS: tuple[str, ...] = ("cos",)
# A collection is a directory: no path separators, no leading dot (those are ours). Matched with
# fullmatch: `$` would also accept a trailing newline and make a directory named "a\n".
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


class CollectionSpec(msgspec.Struct, frozen=True, kw_only=True):
    """A collection's fixed parameters, stored with it and returned by the API."""

    name: str
    model: str
    dimensions: int
    dtype: str = "f32"
    metric: str = "cos"
    connectivity: int = 16
    expansion_add: int = 128
    expansion_search: int = 256
    rescore_multiple: int = 4
    created: int = 0

    @property
    def packed_bytes(self) -> int:
        """Bytes of one b1 code: the dimensions' signs, 8 per byte."""
        return (self.dimensions + 7) // 8


def check_name(name: str) -> str:
    """The name if it can be a collection's, else a 400."""
    if not _NAME.fullmatch(name):
        raise InvalidRequest(
            "`name` must be 1-64 characters of letters, digits, '_', '-' or '.', "
            "starting with a letter or digit",
            param="name",
        )
    return name


def check_spec(spec: CollectionSpec, *, min_dims: int, max_dims: int) -> CollectionSpec:
    """The spec if every field is usable, else a 400 naming the field."""
    check_name(spec.name)
    if not min_dims <= spec.dimensions <= max_dims:
        raise InvalidRequest(
            f"`dimensions` must be in {min_dims}..{max_dims} for {spec.model}, "
            f"got {spec.dimensions}",
            param="dimensions",
        )
    if spec.dtype not in DTYPES:
        raise InvalidRequest(
            f"`dtype` must be one of {', '.join(DTYPES)}, got {spec.dtype!r}", param="dtype"
        )
    if spec.metric not in METRICS:
        raise InvalidRequest(f"`metric` must be 'cos', got {spec.metric!r}", param="metric")
    for field, low, high in (
        ("connectivity", 2, 128),
        ("expansion_add", 1, 4096),
        ("expansion_search", 1, 4096),
        ("rescore_multiple", 1, 256),
    ):
        value = getattr(spec, field)
        if not low <= value <= high:
            raise InvalidRequest(f"`{field}` must be in {low}..{high}, got {value}", param=field)
    return spec
