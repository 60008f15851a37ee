"""What lining up a continuation costs: how much is held, and the CPU it takes.

    python -m bench.continuation [--rounds R]

For answers whose sent part is about 1, 10 and 30 thousand characters (words drawn
from a vocabulary with common words recurring), each kind of continuation — clean,
repeating the last three words, repeating the last sentence, starting over, starting
over with two words changed — is fed to a `ContinuationAligner` in 4-character chunks
(a token's worth), as a stream would. Reported per cell, the median over rounds:

- held: characters of the continuation taken in before the first character went out;
- CPU/char: process CPU time per continuation character, and that as a ratio to the
  clean continuation of the same answer, measured in the same round;
- longest feed: the slowest single `feed`/`flush` call, the longest the event loop is
  held up by the aligner.

Speed is measured here, never asserted.
"""

from __future__ import annotations

import argparse
import random
import re
import statistics
import time
from collections.abc import Callable

from rich.console import Console
from rich.table import Table

from bastion.routing.continuation import ContinuationAligner

COMMON = ["the", "of", "and", "to", "in", "is", "it", "a"]
CHUNK = 4


def answer(words: int, rng: random.Random) -> str:
    syllables = [c + v for c in "bcdfghklmnprstvwz" for v in "aeiou"]
    vocab = ["".join(rng.choices(syllables, k=rng.randint(2, 4))) for _ in range(3000)]
    out = []
    for i in range(words):
        word = rng.choice(COMMON) if rng.random() < 0.35 else rng.choice(vocab)
        out.append(word + ("." if i % 12 == 11 else ""))
    return " ".join(out)


def kinds(text: str, cut: int) -> dict[str, str]:
    starts = [m.start() for m in re.finditer(r"\S+", text[:cut])]
    sentence = max([0, *(m.end() for m in re.finditer(r"\.\s+", text[:cut]))])
    words = text.split(" ")
    changed = list(words)
    changed[1], changed[len(words) // 4] = "changed", "altered"
    return {
        "clean": text[cut:],
        "repeat 3 words": text[starts[-3] :],
        "repeat sentence": text[sentence:],
        "start over": text,
        "start over, 2 words changed": " ".join(changed),
    }


def run(sent: str, cont: str) -> tuple[int, float, float]:
    """(held chars, CPU seconds, longest call in seconds) for one continuation."""
    aligner = ContinuationAligner(sent)
    held, longest, fed = -1, 0.0, 0
    started = time.process_time()
    calls: list[Callable[[], str]] = [
        lambda at=at: aligner.feed(cont[at : at + CHUNK]) for at in range(0, len(cont), CHUNK)
    ]
    calls.append(aligner.flush)
    for call in calls:
        before = time.perf_counter()
        out = call()
        longest = max(longest, time.perf_counter() - before)
        fed += CHUNK
        if out and held < 0:
            held = min(fed, len(cont))
    return held, time.process_time() - started, longest


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.continuation")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    rng = random.Random(7)
    table = Table("sent chars", "continuation", "held", "CPU/char", "vs clean", "longest feed")
    for words in (200, 2000, 6000):
        text = answer(words * 2, rng)
        cut = len(text) // 2 + 3  # inside a word
        conts = kinds(text, cut)
        samples: dict[str, list[tuple[int, float, float]]] = {k: [] for k in conts}
        ratios: dict[str, list[float]] = {k: [] for k in conts}
        for _ in range(args.rounds):
            clean = run(text[:cut], conts["clean"])
            for kind, cont in conts.items():
                got = clean if kind == "clean" else run(text[:cut], cont)
                samples[kind].append(got)
                ratios[kind].append((got[1] / len(cont)) / (clean[1] / len(conts["clean"])))
        for kind, cont in conts.items():
            held = statistics.median(s[0] for s in samples[kind])
            cpu = statistics.median(s[1] for s in samples[kind]) / len(cont)
            longest = statistics.median(s[2] for s in samples[kind])
            table.add_row(
                f"{cut:,}",
                kind,
                f"{held:,.0f}",
                f"{cpu * 1e9:,.0f} ns",
                f"{statistics.median(ratios[kind]):.1f}×",
                f"{longest * 1e3:.2f} ms",
            )
    Console().print(table)


if __name__ == "__main__":
    main()
