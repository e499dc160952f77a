"""The process's one TLS context for Google, shared by every client the gateway builds."""

from __future__ import annotations

import functools
import os
import ssl

import certifi


@functools.cache
def tls_context() -> ssl.SSLContext:
    """The process's one TLS context for Google, built as google-genai builds its own (certifi, or
    SSL_CERT_FILE / SSL_CERT_DIR): loading the CA bundle costs ~30 ms a context, three per app."""
    return ssl.create_default_context(
        cafile=os.environ.get("SSL_CERT_FILE", certifi.where()),
        capath=os.environ.get("SSL_CERT_DIR"),
    )
