"""Content keys: the cache identity of a Content under the parameters that change its vector."""

from __future__ import annotations

import blake3

from gateway.content.model import Content, EmbedParams

KEY_VERSION = b"gw-key-v1"


def content_key(content: Content, params: EmbedParams) -> bytes:
    """A 32-byte key over the decoded content and the parameters that change the vector."""
    fields: list[bytes] = [
        b"" if field is None else str(field).encode()
        for field in (params.namespace, params.model, params.task_type, params.title, params.dims)
    ]
    options = params.vertex_options
    if options != (None, None, None):  # only then: every other request keeps its old key
        fields.append(b"vertex:" + b"".join(b"-" if o is None else b"%d" % o for o in options))
    for part in content.parts:
        fields.append(part.kind.encode())
        fields.append(part.mime_type.encode())
        if part.kind == "text":
            fields.append(part.text.encode("utf-8", "surrogatepass"))
        elif part.uri:
            fields.append(b"uri:" + part.uri.encode())
        else:
            fields.append(blake3.blake3(part.data, max_threads=_threads(len(part.data))).digest())
    # Length-prefixing makes the encoding injective: ("ab","c") never equals ("a","bc").
    framed = b"".join(len(f).to_bytes(8, "little") + f for f in fields)
    return blake3.blake3(KEY_VERSION + framed).digest()


def _threads(size: int) -> int:
    return blake3.blake3.AUTO if size >= 4 * 1024 * 1024 else 1
