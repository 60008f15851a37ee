"""Other gateways to measure Bastion against; for now the LiteLLM proxy.

LiteLLM is not a dependency of Bastion. It lives in its own virtualenv beside this file,
made by `make bench-peers` or `python -m bench.gateway --with-litellm`:

    python3 -m venv bench/.litellm-venv
    bench/.litellm-venv/bin/pip install 'litellm[proxy]'

When that venv is missing the benchmark leaves LiteLLM's rows out and says so.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from bench.procs import Server, free_port, start_server

LITELLM_VENV = Path(__file__).resolve().parent / ".litellm-venv"
LITELLM_BIN = LITELLM_VENV / "bin" / "litellm"
LITELLM_HINT = (
    "LiteLLM not installed: `make bench-peers` (or --with-litellm) makes "
    "bench/.litellm-venv with `pip install 'litellm[proxy]'`"
)
INSTALL_TIMEOUT = 1800.0  # seconds; a cold pip install of litellm[proxy] takes minutes
# Run as an operator would offline and lean: the bundled model-cost map instead of a
# download at start (which retries for seconds without a network), no telemetry, and
# uvicorn's per-request access log off, as Bastion's is by default.
LITELLM_ENV = {"LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_TELEMETRY": "False"}
_QUIET_ACCESS_LOG = {
    "version": 1,
    "disable_existing_loggers": False,
    "loggers": {"uvicorn.access": {"level": "WARNING"}},
}


def litellm_installed() -> bool:
    return LITELLM_BIN.exists()


def install_litellm() -> None:
    """Make the venv and install `litellm[proxy]` into it (once; minutes)."""
    if not (LITELLM_VENV / "bin" / "python").exists():
        subprocess.run([sys.executable, "-m", "venv", str(LITELLM_VENV)], check=True)
    pip = str(LITELLM_VENV / "bin" / "pip")
    subprocess.run([pip, "install", "-q", "litellm[proxy]"], check=True, timeout=INSTALL_TIMEOUT)


def litellm_version() -> str:
    python = LITELLM_VENV / "bin" / "python"
    code = "from importlib.metadata import version; print(version('litellm'))"
    done = subprocess.run([str(python), "-c", code], capture_output=True, text=True, timeout=60)
    return done.stdout.strip() or "?"


def litellm_config(
    models: Mapping[str, tuple[str, str]], fallbacks: Mapping[str, str]
) -> dict[str, Any]:
    """A proxy config: `models` maps each name clients use to (upstream model, base URL),
    served as OpenAI-compatible `openai/<model>`; `fallbacks` maps a name to the name
    its requests fall back to. Retries and cooldowns are LiteLLM's defaults."""
    return {
        "model_list": [
            {
                "model_name": name,
                "litellm_params": {"model": f"openai/{model}", "api_base": url, "api_key": "x"},
            }
            for name, (model, url) in models.items()
        ],
        "router_settings": {"fallbacks": [{name: [to]} for name, to in fallbacks.items()]},
        # No keys, as Bastion runs here: every request is let in without a lookup.
        "general_settings": {"dangerously_permit_weak_or_unset_master_key": True},
    }


@contextmanager
def litellm_server(
    config: dict[str, Any], directory: Path, *, core: int | None
) -> Iterator[Server]:
    """`litellm --config FILE --port P` on `core`, healthy (GET /health/liveliness)."""
    path = directory / "litellm.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    log_config = directory / "litellm-logging.json"
    log_config.write_text(json.dumps(_QUIET_ACCESS_LOG))
    port = free_port()
    args = [str(LITELLM_BIN), "--config", str(path), "--host", "127.0.0.1", "--port", str(port)]
    args += ["--log_config", str(log_config)]
    with start_server(
        "litellm",
        args,
        url=f"http://127.0.0.1:{port}",
        health_path="/health/liveliness",
        core=core,
        env=LITELLM_ENV,
        cwd=str(directory),
    ) as server:
        yield server
