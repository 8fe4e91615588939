"""One zone's canonical free area, with untouched memory kept implicit (page_alloc's; fact HOLE-BOOT-HANDOVER).

Boot hands every usable range over in maximal aligned blocks; all but
O(MAX_PAGE_ORDER) of a range's blocks are top-order ones in a row. Those rows
stay rows (``runs``) until an operation touches one of their blocks, so a
zone costs O(ranges + touched blocks) whatever its size: 64 TiB boots as fast
as 64 MiB. Below the top order every free block is explicit.
"""

from __future__ import annotations

import bisect
from typing import Iterable, Iterator


class FreeArea:
    """``blocks[k]``: first PFNs of the explicit free order-k blocks; ``runs``: disjoint [start, end) rows of top-order ones.

    Together they are the zone's free blocks, each maximal (no two free
    buddies below the top order), as __free_one_page keeps them.
    """

    __slots__ = ("max_order", "blocks", "_starts", "_ends")

    def __init__(self, max_order: int, blocks: Iterable[Iterable[int]] = (), runs: Iterable[tuple[int, int]] = ()) -> None:
        self.max_order = max_order
        self.blocks: list[set[int]] = [set(b) for b in blocks] or [set() for _ in range(max_order + 1)]
        ordered = sorted(runs)
        self._starts = [s for s, _ in ordered]
        self._ends = [e for _, e in ordered]

    def copy(self) -> FreeArea:
        return FreeArea(self.max_order, self.blocks, zip(self._starts, self._ends))

    # -- queries -----------------------------------------------------------------

    def has(self, order: int) -> bool:
        """Some free block of ``order`` or more (free_area[order..MAX_PAGE_ORDER] not all empty)."""
        return bool(self._starts) or any(self.blocks[k] for k in range(order, self.max_order + 1))

    def contains(self, pfn: int, order: int) -> bool:
        """The free block of ``order`` at ``pfn`` is one of this zone's."""
        if pfn in self.blocks[order]:
            return True
        return order == self.max_order and self._run_of(pfn) >= 0

    def first(self, order: int) -> int | None:
        """The lowest first PFN of a free order-``order`` block (a scan: for messages)."""
        explicit = min(self.blocks[order]) if self.blocks[order] else None
        if order == self.max_order and self._starts and (explicit is None or self._starts[0] < explicit):
            return self._starts[0]
        return explicit

    def rows(self) -> Iterator[tuple[int, int, int]]:
        """Every free block as (pfn, order, count): count consecutive blocks of that order from pfn."""
        for k, starts in enumerate(self.blocks):
            for pfn in starts:
                yield pfn, k, 1
        for s, e in zip(self._starts, self._ends):
            yield s, self.max_order, (e - s) >> self.max_order

    def top_intervals(self) -> list[tuple[int, int]]:
        """The top-order free blocks, explicit and in runs, as sorted, coalesced [start, end) intervals."""
        return coalesce(sorted([(p, p + (1 << self.max_order)) for p in self.blocks[self.max_order]]
                               + list(zip(self._starts, self._ends))))

    # -- changes -----------------------------------------------------------------

    def add(self, pfn: int, order: int) -> None:
        self.blocks[order].add(pfn)

    def discard(self, pfn: int, order: int) -> None:
        """Take the free block of ``order`` at ``pfn`` out (a run splits around it)."""
        if pfn in self.blocks[order] or order < self.max_order:
            self.blocks[order].discard(pfn)
            return
        i = self._run_of(pfn)
        if i < 0:
            return
        s, e, top = self._starts[i], self._ends[i], 1 << self.max_order
        del self._starts[i], self._ends[i]
        if pfn + top < e:
            self._starts.insert(i, pfn + top)
            self._ends.insert(i, e)
        if s < pfn:
            self._starts.insert(i, s)
            self._ends.insert(i, pfn)

    def _run_of(self, pfn: int) -> int:
        """The index of the run holding the top-order block at ``pfn``, or -1."""
        i = bisect.bisect_right(self._starts, pfn) - 1
        if i >= 0 and pfn < self._ends[i] and not (pfn - self._starts[i]) & ((1 << self.max_order) - 1):
            return i
        return -1


def coalesce(intervals: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sorted [start, end) intervals with abutting ones joined (overlaps are the caller's to rule out)."""
    out: list[tuple[int, int]] = []
    for s, e in intervals:
        if out and out[-1][1] == s:
            out[-1] = (out[-1][0], e)
        else:
            out.append((s, e))
    return out
