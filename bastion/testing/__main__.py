"""Run a fleet until SIGINT/SIGTERM, for tests that start Bastion as a subprocess.

    python -m bastion.testing --upstream primary=9001 --upstream secondary=9002 \
        [--prefill ignore] [--instruct restart] [--overlap-words 3]

When every upstream listens, one line of JSON goes to stdout mapping each name to its
base URL: `{"primary": "http://127.0.0.1:9001/v1", ...}`. Port 0 picks a free port.
Script the upstreams over HTTP with the `/_fleet/*` routes (see `control`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from collections.abc import Sequence

from bastion.testing.fleet import Fleet
from bastion.testing.plan import INSTRUCT_MODES, PREFILL_MODES
from bastion.testing.server import DEFAULT_TEXT, FakeUpstream


def _upstream(spec: str) -> tuple[str, int]:
    name, sep, port = spec.partition("=")
    if not sep or not name or not port.isdigit() or int(port) > 65535:
        raise argparse.ArgumentTypeError(f"expected NAME=PORT, got {spec!r}")
    return name, int(port)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bastion.testing", description="Run a fleet of fake LLM upstreams."
    )
    parser.add_argument(
        "--upstream",
        action="append",
        type=_upstream,
        required=True,
        metavar="NAME=PORT",
        help="an upstream to run (repeatable); port 0 picks a free one",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: loopback)")
    parser.add_argument("--text", default=DEFAULT_TEXT, help="the full answer text")
    parser.add_argument(
        "--chunk-delay", type=float, default=0.0, help="seconds between streamed chunks"
    )
    parser.add_argument(
        "--prefill",
        choices=PREFILL_MODES,
        default="continue",
        help="what a final assistant message gets: continued, ignored (the answer starts "
        "over, as OpenAI's API does) or rejected (default: continue)",
    )
    parser.add_argument(
        "--instruct",
        choices=INSTRUCT_MODES,
        default="overlap",
        help="how a 'please continue' request is answered: cleanly, repeating the last "
        "words or sentence, starting over, or starting over reworded (default: overlap)",
    )
    parser.add_argument(
        "--overlap-words",
        type=int,
        default=3,
        help="words repeated by --instruct overlap (default: 3)",
    )
    args = parser.parse_args(argv)
    if args.overlap_words < 0:
        parser.error("--overlap-words must be >= 0")
    names = [name for name, _ in args.upstream]
    if len(set(names)) != len(names):
        parser.error("upstream names must be unique")
    return args


async def serve(args: argparse.Namespace) -> None:
    fleet = Fleet(
        FakeUpstream(
            name,
            text=args.text,
            host=args.host,
            port=port,
            chunk_delay=args.chunk_delay,
            prefill=args.prefill,
            instruct=args.instruct,
            overlap_words=args.overlap_words,
        )
        for name, port in args.upstream
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with fleet:
        print(json.dumps(fleet.urls()), flush=True)
        await stop.wait()


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        asyncio.run(serve(args))
    except OSError as exc:  # most often: the port is taken
        print(f"bastion.testing: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
