"""FakeGemini: the Gemini embeddings REST API, offline and deterministic, for tests and demos.

fake = FakeGemini()
client = fake.genai_client()                 # the real google-genai SDK, in-process
with run_fake_in_thread(fake) as base_url:   # or on a real 127.0.0.1 socket
    ...
fake.fail_next(429, times=2, retry_delay="1s")
fake.poison(lambda item: item.text == "bad")
assert fake.calls[-1].api_key == "gateway-key"
"""

from gateway.fake.fake_gemini import EMBEDDING_MODELS, FAKE_BASE_URL, FakeGemini
from gateway.fake.faults import MalformedKind
from gateway.fake.records import FakeCall, FakeItem, FakePart
from gateway.fake.server import create_fake_app, run_fake_in_thread
from gateway.fake.transports import SyncASGITransport
from gateway.fake.vectors import DIMS
from gateway.fake.wire import MAX_BATCH

__all__ = [
    "DIMS",
    "EMBEDDING_MODELS",
    "FAKE_BASE_URL",
    "MAX_BATCH",
    "FakeCall",
    "FakeGemini",
    "FakeItem",
    "FakePart",
    "MalformedKind",
    "SyncASGITransport",
    "create_fake_app",
    "run_fake_in_thread",
]
