"""The bounded line reader: long lines become markers, never whole lines in memory."""

from __future__ import annotations

import io

from soc_agent.lines import OversizeLine, bounded_lines


class Reads(io.BytesIO):
    """A file that remembers the largest single read it was asked for."""

    largest = 0

    def readline(self, size=-1):
        line = super().readline(size)
        Reads.largest = max(Reads.largest, len(line))
        return line


def test_short_lines_pass_through_with_their_endings():
    data = b"a\nbb\r\n\nlast-without-newline"
    assert list(bounded_lines(io.BytesIO(data), 20)) == [b"a\n", b"bb\r\n", b"\n", b"last-without-newline"]


def test_a_line_at_the_limit_passes_and_one_byte_more_is_oversize():
    at, over = b"x" * 10, b"y" * 11
    out = list(bounded_lines(io.BytesIO(at + b"\r\n" + over + b"\n" + at + b"\n" + over + b"\r\n" + over), 10))
    assert out[0] == at + b"\r\n" and out[2] == at + b"\n"
    assert out[1] == out[3] == out[4] == OversizeLine(head=over, size=11, limit=10)


def test_a_long_line_is_read_in_bounded_pieces_and_the_next_line_follows():
    Reads.largest = 0
    stream = Reads(b"z" * 5_000_000 + b"\r\nnext\n" + b"q" * 3_000_000)
    out = list(bounded_lines(stream, 1000, keep=100, chunk=64 * 1024))
    assert out[0] == OversizeLine(head=b"z" * 100, size=5_000_000, limit=1000)
    assert out[1] == b"next\n"
    assert out[2].size == 3_000_000 and "over the 1000-byte limit" in out[2].reason
    assert Reads.largest <= 64 * 1024
