#!/usr/bin/env bash
# An application that pins its own pydantic and aiohttp (older minors than
# requirements/dev.lock, at Bastion's lower bounds) can still `pip install` Bastion:
# a fresh venv installs both pins and the project, then imports it, builds a Router
# from a config, answers a request and builds the gateway's app.
set -euo pipefail

PYTHON="${PYTHON:-python3}"
# The oldest minors pyproject.toml admits; the lock holds newer ones.
PYDANTIC_PIN="${PYDANTIC_PIN:-2.11}"
AIOHTTP_PIN="${AIOHTTP_PIN:-3.11}"

project="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

"$PYTHON" -m venv "$work/venv"
# No --upgrade pip: the check is that the machine's pip resolves it as it is.
"$work/venv/bin/pip" install -q --disable-pip-version-check \
    "pydantic==${PYDANTIC_PIN}.*" "aiohttp==${AIOHTTP_PIN}.*" "$project"

cd "$work"   # import the installed package, not the checkout
PYDANTIC_PIN="$PYDANTIC_PIN" AIOHTTP_PIN="$AIOHTTP_PIN" "$work/venv/bin/python" - <<'EOF'
import asyncio
import os

import aiohttp
import pydantic

import bastion
from bastion import Router, chat
from bastion.config import load_config
from bastion.server.app import create_app
from bastion.server.gateway import Gateway

for name, have, want in (
    ("pydantic", pydantic.VERSION, os.environ["PYDANTIC_PIN"]),
    ("aiohttp", aiohttp.__version__, os.environ["AIOHTTP_PIN"]),
):
    if not have.startswith(want + "."):
        raise SystemExit(f"{name} {have} installed, the application pinned {want}.*")
if "site-packages" not in bastion.__file__:
    raise SystemExit(f"bastion imported from {bastion.__file__}, not the installed package")

CONFIG = """
endpoints:
  - {id: primary, provider: scripted, model: m, reply: "from primary"}
models:
  chat: {targets: [primary]}
"""


async def main() -> None:
    router = Router.from_config(CONFIG)
    answer = await router.complete(chat("hi"), model="chat")
    assert answer.text == "from primary", answer.text
    await router.aclose()
    gateway = Gateway(load_config(CONFIG))
    app = create_app(gateway)
    assert app.router.routes(), "the gateway app has no routes"


asyncio.run(main())
print(f"installs beside pydantic {pydantic.VERSION} and aiohttp {aiohttp.__version__}: ok")
EOF
