"""What several refmodel modules share and no caller outside refmodel should use, grouped by owner (like mm/internal.h).

Public names live in their mechanism's module; this is the middle tier
between those and module-private helpers. Plain-int GFP bits are public
(``gfp.GFP_INT``), so they are not here.
"""

from __future__ import annotations

import bisect
from typing import Callable, Generic, TypeVar

from .errors import Violation
from .expectation import Expectation, Outcome

_T = TypeVar("_T")

# -- expectations: shared by page_alloc and slab -----------------------------------------


def misuse(kind: type[Violation], rule_id: str | None, reason: str) -> Expectation:
    """A fatal misuse (a BUG in the kernel: report and refuse); ``rule_id`` None for one the kernel does not check (undefined)."""
    return Expectation(Outcome.MUST_FAIL, rule_id or "undefined", reason, kind, rule_id, fatal=True, misuse=reason)


# -- interval index: page_alloc's live blocks, slab's live objects, slab_debug's free objects ----


class IntervalIndex(dict[int, _T], Generic[_T]):
    """Disjoint half-open intervals [start, end(item)), as a dict from start to item, with sorted starts beside it.

    Reads are a dict's (``index[start]``, ``get``, ``in``, iteration);
    ``index[start] = item``, ``del index[start]`` and ``pop`` keep the sorted
    starts in step (no other dict mutator may be used). Point and range
    queries cost O(log n) by bisection.
    """

    def __init__(self, end: Callable[[_T], int]) -> None:
        super().__init__()
        self._end = end
        self._starts: list[int] = []

    def __setitem__(self, start: int, item: _T) -> None:
        if start not in self:
            bisect.insort(self._starts, start)
        super().__setitem__(start, item)

    def __delitem__(self, start: int) -> None:
        super().__delitem__(start)
        del self._starts[bisect.bisect_left(self._starts, start)]

    def pop(self, start: int) -> _T:  # type: ignore[override]
        item = super().pop(start)
        del self._starts[bisect.bisect_left(self._starts, start)]
        return item

    def containing(self, point: int) -> _T | None:
        """The interval holding ``point``, or None."""
        i = bisect.bisect_right(self._starts, point) - 1
        if i >= 0:
            item = self[self._starts[i]]
            if point < self._end(item):
                return item
        return None

    def first_overlapping(self, start: int, end: int) -> _T | None:
        """The lowest interval overlapping [start, end), or None."""
        item = self.containing(start)
        if item is not None:
            return item
        j = bisect.bisect_left(self._starts, start)
        if j < len(self._starts) and self._starts[j] < end:
            return self[self._starts[j]]
        return None

    def last_overlapping(self, start: int, end: int, *, ignore: int | None = None) -> _T | None:
        """The highest interval other than the one starting at ``ignore`` overlapping [start, end), or None."""
        i = bisect.bisect_left(self._starts, end) - 1
        while i >= 0:
            s = self._starts[i]
            if s == ignore:
                i -= 1
                continue
            item = self[s]
            return item if self._end(item) > start else None
        return None

    def at_or_before(self, point: int) -> _T | None:
        """The interval starting last at or before ``point`` (whether or not it reaches it), or None."""
        i = bisect.bisect_right(self._starts, point) - 1
        return self[self._starts[i]] if i >= 0 else None

    def nearest(self, point: int, n: int) -> list[_T]:
        """Up to ``n`` intervals whose starts lie nearest ``point`` on either side, in start order."""
        i = bisect.bisect_left(self._starts, point)
        lo, hi = max(0, i - n // 2), min(len(self._starts), i + n - n // 2)
        return [self[s] for s in self._starts[lo:hi]]

    def all_overlapping(self, start: int, end: int) -> list[_T]:
        """Every interval overlapping [start, end), lowest first."""
        i = bisect.bisect_left(self._starts, start)
        if i and self._end(self[self._starts[i - 1]]) > start:
            i -= 1
        out = []
        while i < len(self._starts) and self._starts[i] < end:
            out.append(self[self._starts[i]])
            i += 1
        return out


# -- machine: shared with presets ------------------------------------------------------


def format_size(nbytes: int) -> str:
    """A byte count as a person reads it: "64 MiB", "1.5 MiB", "640 B" (for descriptions and error messages)."""
    for unit, shift in (("TiB", 40), ("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if nbytes >= 1 << shift and nbytes % (1 << shift) == 0:
            return f"{nbytes >> shift} {unit}"
    if nbytes >= 1 << 20:
        return f"{nbytes / (1 << 20):.1f} MiB"
    return f"{nbytes} B"
