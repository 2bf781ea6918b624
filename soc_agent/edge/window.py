"""Per-source sliding windows: ``count`` failures with ``t_last - t_first <= window_s`` (inclusive).

The same definition as the benchmark's ground truth and fail2ban's findtime.
Each source keeps at most ``count + 3`` timestamps (a few extra absorb
slightly out-of-order counts, e.g. an ``Invalid user`` counted when its
connection closes); sources are kept in least-recently-failed order and the
oldest is evicted past ``max_sources``, so memory is bounded whatever the
number of attacking addresses.
"""

from __future__ import annotations

from bisect import insort
from collections import OrderedDict
from collections.abc import Iterator, MutableSet


class SourceWindows:
    """Counts failures per source; ``add`` returns the window count when it crosses the threshold."""

    __slots__ = ("_src", "count", "evicted", "max_sources", "window_s")

    def __init__(self, count: int = 5, window_s: float = 60.0, max_sources: int = 100_000) -> None:
        if count < 2:
            raise ValueError("count must be at least 2")
        self.count, self.window_s, self.max_sources = count, window_s, max_sources
        self._src: OrderedDict[bytes, list[float]] = OrderedDict()
        self.evicted = 0
        """Sources dropped to stay under ``max_sources``."""

    def add(self, source: bytes, ts: float) -> bool:
        """Record one failure; True when ``count`` failures now fall inside the window."""
        src = self._src
        times = src.get(source)
        if times is None:
            src[source] = [ts]
            if len(src) > self.max_sources:
                src.popitem(last=False)
                self.evicted += 1
            return False
        src.move_to_end(source)
        if ts >= times[-1]:
            times.append(ts)
            if len(times) > self.count + 3:
                del times[0]
            n = len(times)
            return n >= self.count and ts - times[n - self.count] <= self.window_s
        insort(times, ts)
        if len(times) > self.count + 3:
            del times[0]
        k = self.count - 1
        return any(times[i + k] - times[i] <= self.window_s for i in range(len(times) - k))

    def forget(self, source: bytes) -> None:
        """Drop a source's history (after it was judged, the next crossing starts afresh)."""
        self._src.pop(source, None)

    def __len__(self) -> int:
        return len(self._src)


class RecentSet(MutableSet):
    """A set holding at most ``max_size`` items: adding past it evicts the least recently added first.

    Compares equal to a ``set`` with the same items; ``evicted`` counts what was dropped.
    """

    __slots__ = ("_items", "evicted", "max_size")

    def __init__(self, max_size: int = 100_000) -> None:
        if max_size < 1:
            raise ValueError("max_size must be at least 1")
        self.max_size = max_size
        self._items: OrderedDict[object, None] = OrderedDict()
        self.evicted = 0

    def add(self, item: object) -> None:
        """Add ``item`` (or refresh it as the most recent), evicting the oldest past ``max_size``."""
        items = self._items
        if item in items:
            items.move_to_end(item)
            return
        items[item] = None
        while len(items) > self.max_size:
            items.popitem(last=False)
            self.evicted += 1

    def discard(self, item: object) -> None:
        self._items.pop(item, None)

    def __contains__(self, item: object) -> bool:
        return item in self._items

    def __iter__(self) -> Iterator:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"RecentSet({list(self._items)!r}, max_size={self.max_size})"
