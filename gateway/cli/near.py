"""`gateway cache near <file or text>`: explain near-duplicate reuse for one input."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gateway.cli.options import settings_from


def add_near(commands: Any, common: argparse.ArgumentParser, guarded: Any) -> None:
    """Add `cache near` to the cache subcommands."""
    near = commands.add_parser(
        "near", parents=[common], help="which cached input a file or text would be served"
    )
    near.add_argument("input", help="an image file (PNG, JPEG), a text file, or a text")
    near.add_argument("--model", help="the model (default: [embeddings] default_model)")
    near.set_defaults(func=guarded(_near))


def _near(args: argparse.Namespace) -> int:
    from gateway.content.model import Content, EmbedParams, Part
    from gateway.errors import CommandError
    from gateway.media.sniff import sniff_mime
    from gateway.similar.explain import explain

    settings = settings_from(args)
    spec = settings.model(args.model or settings.embeddings.default_model)
    if spec is None:
        raise CommandError(f"no model {args.model!r} in [[models]]")
    if not Path(settings.cache.dir).is_dir():
        raise CommandError(f"no cache at {settings.cache.dir}")
    path = Path(args.input)
    content = Content.of_text(args.input)
    if path.is_file():
        data = path.read_bytes()
        mime = sniff_mime(data)
        if mime.startswith("image/"):
            content = Content(parts=(Part(kind="image", mime_type=mime, data=data),))
        else:
            content = Content.of_text(data.decode("utf-8", "replace"))
    namespace = "fake" if settings.upstream.fake else ""
    if (
        settings.upstream.provider == "vertex"
        and not settings.upstream.share_cache_across_providers
    ):
        namespace += "/vertex" if namespace else "vertex"  # as the app keys (gateway/app.py)
    params = EmbedParams(model=spec.upstream_id, namespace=namespace)
    say: Callable[[str], None] = print
    served = explain(settings, content, params, say)
    sys.stdout.flush()
    return 0 if served else 1
