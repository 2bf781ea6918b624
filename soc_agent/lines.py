"""Reading newline-delimited input in bounded memory.

Iterating a file object reads a whole line into memory, however long: one
300 MB line is 300 MB (and more, while it is being assembled).
:func:`bounded_lines` reads at most ``limit`` bytes of a line; a longer line
is read on in chunks and discarded up to its newline, and an
:class:`OversizeLine` (its first bytes, its full size, the reason) stands in
for it, so intake dead-letters it and goes on with the next line.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

__all__ = ["OversizeLine", "bounded_lines"]

_KEEP = 64 * 1024
"""Bytes of an oversize line kept for its dead letter."""
_CHUNK = 1 << 20


@dataclass(frozen=True)
class OversizeLine:
    """A line longer than the limit, in place of its content."""

    head: bytes
    """Its first bytes (at most 64 KiB)."""
    size: int
    """Its full length in bytes, without the line ending."""
    limit: int

    @property
    def reason(self) -> str:
        return f"oversize: line is {self.size} bytes, over the {self.limit}-byte limit (max_alert_bytes)"


def bounded_lines(stream: BinaryIO, limit: int, keep: int = _KEEP,
                  chunk: int = _CHUNK) -> Iterator[bytes | OversizeLine]:
    """Each line of ``stream`` (with its ``\\n``), or an :class:`OversizeLine` for one over ``limit`` bytes.

    Memory is bounded by ``limit + 2`` and ``chunk`` bytes whatever the input.
    ``stream.readline(size)`` returns at a newline, so a pipe's lines are
    yielded as they arrive.
    """
    cap = limit + 2  # the content and a "\r\n"
    while True:
        line = stream.readline(cap)
        if not line:
            return
        if line.endswith(b"\n") or len(line) < cap:  # a whole line, or the last one (no newline before EOF)
            content = len(line) - (2 if line.endswith(b"\r\n") else 1 if line.endswith(b"\n") else 0)
            yield line if content <= limit else OversizeLine(line[:min(keep, content)], content, limit)
            continue
        head, size, tail = line[:keep], len(line), line[-1:]
        while True:  # discard the rest of the line, counting it
            rest = stream.readline(chunk)
            if not rest:
                break
            size += len(rest)
            tail = (tail + rest)[-2:]
            if rest.endswith(b"\n"):
                break
        if tail.endswith(b"\n"):
            size -= 2 if tail == b"\r\n" else 1
        yield OversizeLine(head[:size], size, limit)
