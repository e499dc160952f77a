"""Fuzzed media: whatever the bytes, the media layer answers a Part or a GatewayError (a 4xx).

Never an IndexError, struct.error, ValueError, RecursionError or NotImplementedError, which the
routes would turn into 500s. tests/media/fuzz_media.py runs the same mutations for longer.
"""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.config import MediaSettings
from gateway.content.model import Part
from gateway.errors import GatewayError
from gateway.media import media_part
from tests.conftest import examples
from tests.media.mutations import mutate, samples

SETTINGS = MediaSettings(max_scan_steps=20_000)


def answer(data: bytes) -> Part | GatewayError:
    """What media_part makes of `data`; any other exception escapes and fails the test."""
    try:
        return media_part(data, None, param="input[0]", settings=SETTINGS)
    except GatewayError as exc:
        return exc


def check(data: bytes) -> None:
    """A measured Part or a 4xx naming the part, nothing else."""
    got = answer(data)
    if isinstance(got, GatewayError):
        assert 400 <= got.http_status < 500, got
        assert got.param == "input[0]"
    else:
        assert math.isfinite(got.seconds) and got.seconds >= 0
        assert got.pages >= 0


@pytest.mark.parametrize("name", list(samples()))
@settings(
    max_examples=examples(20),
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(rng=st.randoms(use_true_random=False))
def test_mutated_media_is_a_part_or_a_4xx(name: str, rng: random.Random) -> None:
    check(mutate(samples()[name], rng))


@pytest.mark.parametrize("name", list(samples()))
def test_every_sample_is_valid_and_every_cut_of_it_is_answered(name: str) -> None:
    whole = samples()[name]
    media_part(whole, None, param="input[0]", settings=SETTINGS)
    for end in range(0, len(whole), max(1, len(whole) // 97)):
        check(whole[:end])
