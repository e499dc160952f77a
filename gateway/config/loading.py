"""Loading: defaults < config.toml < GATEWAY_* variables < CLI flags; errors name their origin."""

from __future__ import annotations

import difflib
import functools
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, get_origin

import msgspec

from gateway.config.sections import Secrets, Settings
from gateway.errors import ConfigError

# GATEWAY_ names that are not config keys; any other GATEWAY_<SECTION>_<KEY> must name a key.
NOT_CONFIG_VARIABLES = frozenset(
    {
        "GATEWAY_API_KEYS",  # the client keys: a secret, never in Settings (load_secrets)
        "GATEWAY_URL",  # `gateway collections ...`: which gateway to talk to
        "GATEWAY_CLIENT_KEY",  # `gateway collections ...`: the client key it sends
    }
)
INTERNAL_PREFIX = "GATEWAY__"  # the server hands decoded settings to its workers (server.py)
_AT = re.compile(r"^(?P<what>.*?)(?: - at `\$\.?(?P<at>[^`]*)`)?$", re.DOTALL)
_UNKNOWN_FIELD = re.compile(r"^Object contains unknown field `(?P<field>[^`]+)`$")


def load_secrets(environ: Mapping[str, str]) -> Secrets:
    """Read the upstream key and client keys from the environment."""
    key = environ.get("GEMINI_API_KEY") or environ.get("GOOGLE_API_KEY") or None
    raw = environ.get("GATEWAY_API_KEYS", "")
    return Secrets(key, frozenset(k.strip() for k in raw.split(",") if k.strip()))


def load_settings(
    path: str | Path | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
) -> Settings:
    """Decode the TOML file (if any), overlay GATEWAY_* variables, then CLI overrides."""
    environ = environ if environ is not None else {}
    source = "defaults"
    data: dict[str, Any] = {}
    if path is not None:
        source = str(path)
        try:
            data = msgspec.toml.decode(Path(path).read_bytes())
        except FileNotFoundError as exc:
            raise ConfigError(f"{source}: config file not found") from exc
        except msgspec.DecodeError as exc:
            raise ConfigError(f"{source}: not valid TOML: {exc}") from exc
    _validate(data, {}, source)
    origins: dict[str, str] = {}  # "section.key" -> where its value came from, if not the file
    for (section, key), (name, value) in _from_environ(environ).items():
        _section(data, section, source)[key] = value
        origins[f"{section}.{key}"] = f"environment {name}"
    for section, values in (overrides or {}).items():
        for key, value in values.items():
            if value is not None:
                _section(data, section, source)[key] = value
                origins[f"{section}.{key}"] = "command line"
    return _validate(data, origins, source)


def _section(data: dict[str, Any], name: str, source: str) -> dict[str, Any]:
    section = data.setdefault(name, {})
    if not isinstance(section, dict):
        raise ConfigError(f"{source}: `{name}` must be a table ([{name}])")
    return section


def _validate(data: dict[str, Any], origins: Mapping[str, str], source: str) -> Settings:
    try:
        return msgspec.convert(data, Settings, strict=False)
    except msgspec.ValidationError as exc:
        raise ConfigError(_explain(str(exc), data, origins, source)) from exc


def _explain(message: str, data: dict[str, Any], origins: Mapping[str, str], source: str) -> str:
    """One line: where the bad value came from, the key, the value, and what was expected."""
    match = _AT.match(message)
    what, at = (match["what"], match["at"] or "") if match else (message, "")
    unknown = _UNKNOWN_FIELD.match(what)
    if unknown:
        key = f"{at}.{unknown['field']}" if at else unknown["field"]
        return f"{source}: unknown key `{key}`"
    value = _lookup(data, at)
    shown = f" = {value!r}" if value is not None and not isinstance(value, dict | list) else ""
    key = f"`{at}`{shown}: " if at else ""
    return f"{_origin(at, origins, source)}: {key}{what}"


def _origin(at: str, origins: Mapping[str, str], source: str) -> str:
    """Where the value at `at` came from; for a check across keys, every place that set one."""
    if at in origins:
        return origins[at]
    inside = sorted({o for k, o in origins.items() if not at or k.startswith(at + ".")})
    if not inside:
        return source
    return ", ".join(inside if source == "defaults" else [source, *inside])


def _lookup(data: Any, at: str) -> Any:
    """The raw value at a msgspec path like `models[1].dims`, or None."""
    for part in re.findall(r"[^.\[\]]+|\[\d+\]", at):
        try:
            data = data[int(part[1:-1])] if part.startswith("[") else data[part]
        except (KeyError, IndexError, TypeError, ValueError):
            return None
    return data


@functools.cache
def _sections() -> dict[str, dict[str, Any]]:
    """Section name -> {key: type}, for mapping environment variables onto keys."""
    return {
        f.name: {g.name: g.type for g in msgspec.structs.fields(f.type)}
        for f in msgspec.structs.fields(Settings)
        if f.name != "models"
    }


def config_variables() -> list[str]:
    """Every GATEWAY_<SECTION>_<KEY> that sets a key."""
    return [f"GATEWAY_{s}_{k}".upper() for s, keys in _sections().items() for k in keys]


def _from_environ(environ: Mapping[str, str]) -> dict[tuple[str, str], tuple[str, Any]]:
    """(section, key) -> (variable, value) for every GATEWAY_* setting; a stray name is an error."""
    found: dict[tuple[str, str], tuple[str, Any]] = {}
    sections = _sections()
    for name, raw in environ.items():
        if (
            not name.startswith("GATEWAY_")
            or name in NOT_CONFIG_VARIABLES
            or name.startswith(INTERNAL_PREFIX)
        ):
            continue
        rest = name[len("GATEWAY_") :].lower()
        section = next((s for s in sections if rest.startswith(s + "_")), None)
        key = rest[len(section) + 1 :] if section is not None else ""
        if section is None or key not in sections[section]:
            raise ConfigError(_unknown_variable(name, section, key))
        if get_origin(sections[section][key]) in (tuple, list):
            value: Any = [v.strip() for v in raw.split(",") if v.strip()]
        else:
            value = raw.strip()
        found[(section, key)] = (name, value)
    return found


def _unknown_variable(name: str, section: str | None, key: str) -> str:
    if name.startswith("GATEWAY_MODELS"):
        return f"environment: unknown variable {name} ([[models]] is set in the config file only)"
    where = f"no key `{section}.{key}`" if section else "no such config section"
    close = difflib.get_close_matches(name, [*config_variables(), *NOT_CONFIG_VARIABLES], n=1)
    hint = f"; did you mean {close[0]}?" if close else ""
    return f"environment: unknown variable {name} ({where}){hint}"
