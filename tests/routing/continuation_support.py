"""Driving a `ContinuationAligner` the way a stream does, for the continuation tests."""

from __future__ import annotations

from dataclasses import dataclass

from bastion.routing.continuation import ContinuationAligner, ContinuationMisaligned


@dataclass
class Fed:
    """What the caller read after `sent`: the emitted pieces, or the refusal."""

    sent: str
    cont: str
    pieces: list[str]
    trimmed: int
    error: ContinuationMisaligned | None = None

    @property
    def emitted(self) -> str:
        return "".join(self.pieces)

    @property
    def client(self) -> str:
        return self.sent + self.emitted


def feed(sent: str, cont: str, sizes: list[int] | None = None) -> Fed:
    """Feed `cont` in chunks of `sizes` (cycled), then flush."""
    sizes = sizes or [5]
    aligner = ContinuationAligner(sent)
    pieces: list[str] = []
    at, turn = 0, 0
    try:
        while at < len(cont):
            size = sizes[turn % len(sizes)]
            pieces.append(aligner.feed(cont[at : at + size]))
            at, turn = at + size, turn + 1
        pieces.append(aligner.flush())
    except ContinuationMisaligned as exc:
        return Fed(sent, cont, pieces, aligner.trimmed, exc)
    return Fed(sent, cont, pieces, aligner.trimmed)


def aligned(sent: str, cont: str, sizes: list[int] | None = None) -> Fed:
    fed = feed(sent, cont, sizes)
    assert fed.error is None, fed.error
    return fed
