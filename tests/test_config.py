"""Configuration: config.toml documents every default; typos are errors; precedence holds."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from gateway.cli.main import main
from gateway.config import Settings, load_secrets, load_settings
from gateway.errors import ConfigError

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
