"""Configuration: config.toml documents every default; typos are errors; precedence holds."""

from __future__ import annotations

import re
from pathlib import Path

import msgspec
import pytest

from gateway.cli.main import main
from gateway.config import (
    INTERNAL_PREFIX,
    NOT_CONFIG_VARIABLES,
    Settings,
    load_secrets,
    load_settings,
)
from gateway.errors import ConfigError
from gateway.server import SETTINGS_ENV

ROOT = Path(__file__).resolve().parents[1]


def test_config_toml_documents_every_key_with_its_default() -> None:
    assert load_settings(ROOT / "config.toml", {}) == Settings()
    text = (ROOT / "config.toml").read_text()
    for section in msgspec.structs.fields(Settings):
        if section.name == "models":
            continue
        assert f"[{section.name}]" in text
        for key in msgspec.structs.fields(section.type):
            assert f"\n{key.name} = " in text, f"{section.name}.{key.name} is not documented"


def test_unknown_key_names_the_key_and_the_file(tmp_path: Path) -> None:
    path = tmp_path / "gw.toml"
    path.write_text("[server]\nprot = 9000\n")
    with pytest.raises(ConfigError) as info:
        load_settings(path, {})
    assert str(path) in str(info.value) and "server.prot" in str(info.value)


def test_unknown_environment_variable_is_an_error() -> None:
    with pytest.raises(ConfigError, match="GATEWAY_CACHE_DIRR"):
        load_settings(None, {"GATEWAY_CACHE_DIRR": "/tmp/x"})


def test_precedence_flag_over_environment_over_file_over_default(tmp_path: Path) -> None:
    path = tmp_path / "gw.toml"
    path.write_text('[server]\nport = 7000\nhost = "10.0.0.1"\n[cache]\ndir = "from-file"\n')
    env = {"GATEWAY_SERVER_PORT": "7001", "GATEWAY_UPSTREAM_MODE": "cache-only"}
    settings = load_settings(path, env, {"server": {"port": 7002, "host": None}})
    assert settings.server.port == 7002
    assert settings.server.host == "10.0.0.1"
    assert settings.cache.dir == "from-file"
    assert settings.upstream.mode == "cache-only"
    assert settings.server.workers == Settings().server.workers


def test_bad_value_is_an_error_naming_the_key() -> None:
    with pytest.raises(ConfigError, match=r"server\.port"):
        load_settings(None, {"GATEWAY_SERVER_PORT": "eighty"})
    with pytest.raises(ConfigError, match=r"upstream\.mode"):
        load_settings(None, {"GATEWAY_UPSTREAM_MODE": "sometimes"})


def test_secrets_come_from_the_environment_only() -> None:
    secrets = load_secrets({"GOOGLE_API_KEY": "g-key", "GATEWAY_API_KEYS": " a, b ,,"})
    assert secrets.upstream_api_key == "g-key"
    assert secrets.client_keys == frozenset({"a", "b"})
    assert "g-key" not in repr(secrets)
    assert not hasattr(Settings(), "api_key")


def test_cli_reports_a_config_error_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "gw.toml"
    path.write_text("[cache]\nsize = 1\n")
    assert main(["serve", "--config", str(path)]) == 2
    assert "cache.size" in capsys.readouterr().err


def test_models_resolve_by_id_alias_and_prefix(tmp_path: Path) -> None:
    path = tmp_path / "gw.toml"
    path.write_text('[[models]]\nid = "gemini-embedding-2"\naliases = ["text-embedding-3-small"]\n')
    settings = load_settings(path, {})
    spec = settings.model("models/text-embedding-3-small")
    assert spec is not None and spec.upstream_id == "gemini-embedding-2"
    assert settings.model("gemini-embedding-001") is None


# Every kind of range, with values a typo or a bad template produces. Each is refused from the
# file and from the environment, and the message names the key and the file or the variable.
OUT_OF_RANGE = [
    ("server", "port", -5),  # ports are 1..65535; 0 would listen where no client looks
    ("server", "port", 0),
    ("server", "port", 70000),
    ("server", "workers", 0),  # at least one
    ("upstream", "max_concurrency", 0),
    ("media", "max_scan_steps", 0),
    ("server", "max_body_bytes", 0),  # caps must let something through
    ("server", "max_inputs", -1),
    ("upstream", "max_batch", 101),  # the API's cap
    ("cache", "memory_bytes", -1),  # budgets: 0 = off, never negative
    ("cache", "size_limit_bytes", -1),
    ("upstream", "deadline_s", -3),  # timeouts: > 0 and finite
    ("upstream", "timeout_s", 0),
    ("server", "body_timeout_s", "inf"),
    ("upstream", "max_retries", -1),  # counts and rates: >= 0
    ("upstream", "requests_per_minute", -10),
    ("pricing", "video", -0.5),
    ("collections", "compact_removed_share", 1.5),  # a share
    ("collections", "connectivity", 1),
    ("log", "buffer_ms", -1),
    ("upstream", "base_url", "localhost:8080"),  # no scheme: httpx would fail at the first miss
]


def _toml_value(value: object) -> str:
    return f'"{value}"' if isinstance(value, str) and value != "inf" else str(value)


@pytest.mark.parametrize(("section", "key", "value"), OUT_OF_RANGE)
def test_an_out_of_range_value_in_the_file_names_the_key_and_the_file(
    tmp_path: Path, section: str, key: str, value: object
) -> None:
    path = tmp_path / "gw.toml"
    path.write_text(f"[{section}]\n{key} = {_toml_value(value)}\n")
    with pytest.raises(ConfigError) as info:
        load_settings(path, {})
    assert str(info.value).startswith(f"{path}: `{section}.{key}` = ")


@pytest.mark.parametrize(("section", "key", "value"), OUT_OF_RANGE)
def test_an_out_of_range_value_in_the_environment_names_the_variable(
    section: str, key: str, value: object
) -> None:
    name = f"GATEWAY_{section}_{key}".upper()
    with pytest.raises(ConfigError) as info:
        load_settings(None, {name: str(value)})
    assert str(info.value).startswith(f"environment {name}: `{section}.{key}` = '{value}': ")


@pytest.mark.parametrize(
    ("section", "key", "value"),
    [
        ("server", "port", 1),
        ("server", "port", 65535),
        ("cache", "memory_bytes", 0),  # off
        ("cache", "size_limit_bytes", 0),  # unbounded
        ("upstream", "max_wait_ms", 0),
        ("upstream", "breaker_failures", 0),  # never opens
        ("upstream", "backoff_base_s", 0),
        ("collections", "autosave_s", 0),  # off
        ("upstream", "base_url", "http://127.0.0.1:9999"),
    ],
)
def test_the_edges_that_mean_something_are_accepted(section: str, key: str, value: object) -> None:
    settings = load_settings(None, {f"GATEWAY_{section}_{key}".upper(): str(value)})
    assert str(getattr(getattr(settings, section), key)) in (str(value), f"{value}.0")


def test_a_command_line_value_out_of_range_says_so() -> None:
    with pytest.raises(ConfigError, match=r"^command line: `server\.port` = -5: "):
        load_settings(None, {}, {"server": {"port": -5}})
    with pytest.raises(ConfigError, match=r"`server\.workers` = 0"):
        load_settings(None, {}, {"server": {"workers": 0}})


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ('[[models]]\nid = "gemini-embedding-2"\ndims = 64\n', "min_dims (128) is above dims"),
        ('[[models]]\nid = "gemini-embedding-2"\ndims = 0\n', "`models[0].dims` = 0"),
        ('[[models]]\nid = "gemini-embedding-2"\nmax_images = -1\n', "models[0].max_images"),
        (
            '[[models]]\nid = "gemini-embedding-2"\n[[models]]\nid = "b"\n'
            'aliases = ["gemini-embedding-2"]\n',
            "`gemini-embedding-2` names two models",
        ),
        ('[[models]]\nid = "only-this"\n', "default_model `gemini-embedding-2` is not in"),
        ("[upstream]\nbackoff_base_s = 30\n", "backoff_base_s (30.0) is above backoff_max_s"),
    ],
)
def test_keys_that_must_agree_are_checked_together(tmp_path: Path, toml: str, message: str) -> None:
    path = tmp_path / "gw.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError, match=re.escape(message)) as info:
        load_settings(path, {})
    assert str(info.value).startswith(str(path))


@pytest.mark.parametrize(
    ("name", "hint"),
    [
        ("GATEWAY_UPSTREM_MODE", "did you mean GATEWAY_UPSTREAM_MODE?"),  # no such section
        ("GATEWAY_SERVER_PORTT", "did you mean GATEWAY_SERVER_PORT?"),  # no such key
        ("GATEWAY_CACHEDIR", "did you mean GATEWAY_CACHE_DIR?"),
        ("GATEWAY_API_KEY", "did you mean GATEWAY_API_KEYS?"),  # the secret, misspelt
        ("GATEWAY_MODELS", "[[models]] is set in the config file only"),
        ("GATEWAY_CONFIG", "no such config section"),  # not read by anything: say so
    ],
)
def test_an_unknown_gateway_variable_stops_the_server_and_names_it(name: str, hint: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(None, {name: "1"})
    assert f"unknown variable {name} " in str(info.value) and hint in str(info.value)


def test_gateway_names_that_are_not_config_keys_are_left_alone() -> None:
    environ = {
        "GATEWAY_API_KEYS": "k1,k2",  # a secret: read by load_secrets only
        "GATEWAY_URL": "http://127.0.0.1:8080",  # the collections CLI's
        "GATEWAY_CLIENT_KEY": "k1",
        "GATEWAY__SETTINGS": "{}",  # the server's hand-over to its workers
        "GATEWAYS": "x",  # not ours at all
    }
    assert load_settings(None, environ) == Settings()
    assert sorted(NOT_CONFIG_VARIABLES) == ["GATEWAY_API_KEYS", "GATEWAY_CLIENT_KEY", "GATEWAY_URL"]
    assert SETTINGS_ENV.startswith(INTERNAL_PREFIX)


def test_cli_names_an_unknown_variable_and_exits_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("GATEWAY_UPSTREM_MODE", "cache-only")
    assert main(["cache", "stats", "--cache-dir", "/nonexistent"]) == 2
    assert "GATEWAY_UPSTREM_MODE" in capsys.readouterr().err
