"""schemathesis in-process: bodies made from the gateway's own document never get a 5xx, and every
answer is one the document declares (status, content type, body schema, headers).

A handful of examples per body, derandomised so the suite stays fast and stable; the hand run in
the issue 12 report fuzzes every operation with 50 examples against a served gateway.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode, checks

from gateway.fake import FakeGemini
from tests.conftest import examples, make_app, make_settings

# One operation per distinct body (the aliases /embeddings and /v1beta/... share these bodies).
BODIES = [
    "createEmbedding",
    "batchEmbedContents",
    "embedContent",
    "createCollection",
    "addItems",
    "searchCollection",
    "deleteItems",
]
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
    checks.response_headers_conformance,
]


@pytest.mark.slow  # ~2 s: its file goes to a worker first
def test_generated_bodies_get_documented_answers_and_never_a_5xx(tmp_path: Path) -> None:
    app = make_app(make_settings(tmp_path / "cache"), FakeGemini())
    api = schemathesis.openapi.from_asgi("/schema/openapi.json", app)
    for operation_id in BODIES:
        operation = api.find_operation_by_id(operation_id)
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @given(operation.as_strategy(generation_mode=mode))
            @settings(
                max_examples=examples(3),
                deadline=None,
                derandomize=True,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            def call(case: Any) -> None:
                case.call_and_validate(checks=CHECKS)

            call()
