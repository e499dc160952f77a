"""The LiteLLM proxy as a peer: a throwaway venv under bench/.scratch, a config, a started server.

LiteLLM's `gemini/` provider posts `{api_base}/models/{model}:batchEmbedContents` with the key in
`x-goog-api-key` (litellm/llms/vertex_ai/vertex_llm_base.py `_check_custom_proxy`), so api_base
is FakeGemini's URL plus `/v1beta`. Its response cache stores each input of a list separately,
keyed by model and parameters; `disk` uses diskcache, `local` an in-process dict.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

from bench.http_servers import Server, free_port
from bench.outputs import SCRATCH

# 1.108.7 is the newest LiteLLM whose `[proxy]` extra resolves from PyPI here (1.108.8+ pin
# litellm-enterprise/-proxy-extras builds that are not published); 1.107.0 was reported
# compromised and is gone from PyPI: keep the pin exact. diskcache is what `type: disk` needs.
LITELLM_SPEC = "litellm[proxy]==1.108.7"
EXTRA_SPECS = ("diskcache>=5.6",)
VENV = SCRATCH / "litellm-venv"
MODEL = "gemini-embedding-2"
# No network but loopback: LiteLLM keeps its bundled cost map and sends no telemetry.
ENV = {
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    "LITELLM_TELEMETRY_DISABLED": "true",
    "LITELLM_MODE": "PRODUCTION",  # no .env loading from the cwd
    "PYTHONPATH": "",  # its own venv only, not the gateway's tree
}


def ensure_venv() -> Path:
    """The venv's `litellm` executable, creating the venv and installing LiteLLM when missing."""
    exe = VENV / "bin" / "litellm"
    python = VENV / "bin" / "python"
    if exe.exists() and _installed(python):
        return exe
    print(
        f"bench: installing {LITELLM_SPEC} into {VENV} (one time, a few minutes)", file=sys.stderr
    )
    if not python.exists():
        base = Path(getattr(sys, "_base_executable", sys.executable))
        subprocess.run([str(base), "-m", "venv", str(VENV)], check=True)
    pip = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    # Outside the gateway's tree and PYTHONPATH, so pip sees only the throwaway venv.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    subprocess.run([*pip, LITELLM_SPEC, *EXTRA_SPECS], check=True, cwd=VENV, env=env)
    return exe


def _installed(python: Path) -> bool:
    probe = "import importlib.metadata as m, diskcache; print(m.version('litellm'))"
    done = subprocess.run([str(python), "-c", probe], capture_output=True, text=True)
    return done.returncode == 0 and done.stdout.strip() == LITELLM_SPEC.rsplit("==", 1)[1]


def version() -> str:
    """The installed LiteLLM version, or '' when the venv is not there."""
    python = VENV / "bin" / "python"
    if not python.exists():
        return ""
    probe = "import importlib.metadata as m; print(m.version('litellm'))"
    done = subprocess.run([str(python), "-c", probe], capture_output=True, text=True)
    return done.stdout.strip() if done.returncode == 0 else ""


def write_config(kind: str, fake_url: str, directory: Path) -> Path:
    """A proxy config routing `gemini-embedding-2` to FakeGemini with a `disk` or `local` cache."""
    if kind not in ("disk", "local"):
        raise ValueError(kind)
    directory.mkdir(parents=True, exist_ok=True)
    cache_lines = [
        f"    type: {kind}",
        '    supported_call_types: ["embedding", "aembedding"]',
    ]
    if kind == "disk":
        shutil.rmtree(directory / "litellm-disk-cache", ignore_errors=True)  # start cold
        cache_lines.append(f"    disk_cache_dir: {directory / 'litellm-disk-cache'}")
    text = "\n".join(
        [
            "model_list:",
            f"  - model_name: {MODEL}",
            "    litellm_params:",
            f"      model: gemini/{MODEL}",
            f"      api_base: {fake_url}/v1beta",
            "      api_key: bench-dummy-key",
            "litellm_settings:",
            "  cache: true",
            "  drop_params: true",
            "  cache_params:",
            *cache_lines,
            "",
        ]
    )
    path = directory / f"litellm-{kind}.yaml"
    path.write_text(text)
    return path


def litellm_server(kind: str, fake_url: str) -> Server:
    """The LiteLLM proxy (its default uvicorn server, one worker) with a `disk` or `local` cache.

    LiteLLM refuses to start without a master key, so it gets a random one and every request
    carries it, as a real deployment's clients would.
    """
    exe = ensure_venv()
    workdir = SCRATCH / f"litellm-{kind}"
    config = write_config(kind, fake_url, workdir)
    port = free_port()
    cmd = [
        str(exe), "--config", str(config), "--host", "127.0.0.1", "--port", str(port),
        "--num_workers", "1",
    ]  # fmt: skip
    key = f"sk-bench-{secrets.token_hex(16)}"
    env = {**ENV, "LITELLM_MASTER_KEY": key}
    headers = {"Authorization": f"Bearer {key}"}
    return Server(f"litellm-{kind}", cmd, port, env=env, cwd=workdir, headers=headers)
