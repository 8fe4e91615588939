"""Memory contents: the patterns the suite writes into what it holds, and the zero checks.

Where an implementation exposes its memory (capability ``memory``), every
live page block and object carries a pattern over its whole extent; it must
read back unchanged until the free (PAGE-CONTENTS-INTACT,
SLAB-CONTENTS-INTACT), and what was asked zeroed must read zero (API-ZERO,
KZALLOC-ZERO). One region abstraction serves both: page blocks by PFN, objects
by logical address, converted with the machine's ``virt_to_phys``.

Only a region's seed is kept: the pattern is derived again where it is
checked, so the suite holds 16 bytes per live region, whatever its size. The
whole region is checked at its free, at krealloc and at ``check_contents``;
after a refused misuse the regions nearest it and the newest (SPOT_LIMIT of
each) are checked at three sites (their first, middle and last 16 bytes), so
that check costs O(1), not O(live bytes). Blocks a ``fill`` step takes carry
their pattern at those sites only. A region is at most KMALLOC_MAX_SIZE (an order-MAX_PAGE_ORDER block),
so no operation's cost grows with the machine's memory.
"""

from __future__ import annotations

import hashlib
import itertools
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ...refmodel.page_alloc import LiveBlock
from ...refmodel.slab import LiveObject

if TYPE_CHECKING:
    from . import Lockstep

_DIGEST = 16  # bytes of one digest, repeated over a chunk
_CHUNK = 4096  # bytes that repeat one digest: chunks differ, so a page moved within a block is seen
_SITE = 16  # bytes read at each cheap site
_IO_LIMIT = 1 << 20  # bytes per read_phys/write_phys call: a JSON-lines line stays at 2 MiB of hex
ZERO_CHECK_LIMIT = 1 << 16  # bytes of a poisoned object read back (SLAB-POISON)
SPOT_LIMIT = 32  # regions read at their sites after a refused misuse: the nearest to it and the newest, this many each


def _pattern(seed: bytes, start: int, n: int) -> bytes:
    """Bytes ``start .. start + n`` of the region pattern for ``seed``: chunk i repeats blake2b(i, key=seed)."""
    if n <= 0:
        return b""
    out = []
    pos, end = start, start + n
    while pos < end:  # each chunk's piece, built no longer than it is
        i, off = divmod(pos, _CHUNK)
        take = min(_CHUNK - off, end - pos)
        d = hashlib.blake2b(i.to_bytes(8, "little"), digest_size=_DIGEST, key=seed).digest()
        lead = off % _DIGEST
        out.append((d * ((lead + take) // _DIGEST + 1))[lead:lead + take])
        pos += take
    return b"".join(out)


def _first_difference(want: bytes, got: bytes) -> int | None:
    """The first offset where ``got`` departs from ``want`` (a short read departs at its end), or None."""
    if got == want:
        return None
    for base in range(0, min(len(want), len(got)), _CHUNK):
        a, b = want[base:base + _CHUNK], got[base:base + _CHUNK]
        if a != b:
            return base + next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
    return min(len(want), len(got))


@dataclass(frozen=True, slots=True)
class _Region:
    """A live region the caller filled: its seed, its first physical address, its length."""

    seed: bytes
    phys: int
    size: int
    sparse: bool = False  # written and read at its sites only (a zone filled in one step)

    def sites(self) -> list[tuple[int, int]]:
        """(offset, length) of the cheap sites: the first, middle and last 16 bytes."""
        n = min(_SITE, self.size)
        return [(off, n) for off in sorted({0, (self.size // 2) & ~(_SITE - 1), self.size - n}) if off + n <= self.size]

    def spans(self) -> list[tuple[int, int]]:
        """(offset, length) covering the whole region, in pieces of at most _IO_LIMIT bytes (its sites, if sparse)."""
        if self.sparse:
            return self.sites()
        return [(off, min(_IO_LIMIT, self.size - off)) for off in range(0, self.size, _IO_LIMIT)]


@dataclass(frozen=True, slots=True)
class Difference:
    """Where a region departs from what it should hold: the physical address and 16 bytes either way."""

    phys: int
    offset: int
    wrote: bytes
    reads: bytes

    def __str__(self) -> str:
        return f"at physical address {self.phys:#x} (byte {self.offset}) the caller wrote {self.wrote.hex()}, it now reads {self.reads.hex()}"


class Contents:
    """Patterns of live page blocks and objects, written and verified through read_phys/write_phys."""

    def __init__(self, driver: Lockstep) -> None:
        self._d = driver
        self.enabled = driver.check_memory
        self._blocks: dict[int, _Region] = {}  # live block first pfn -> its region
        self.sparse = False  # blocks written now carry their pattern at their sites only
        self._objects: dict[int, _Region] = {}  # live object address -> its region

    # -- raw access ------------------------------------------------------------------

    def read(self, addr: int, n: int) -> bytes:
        """``n`` bytes at logical address ``addr``."""
        return self._read_phys(self._d.machine.virt_to_phys(addr), n)

    def write(self, addr: int, data: bytes) -> None:
        self._d.memory_call(self._d.iut.write_phys, self._d.machine.virt_to_phys(addr), data)

    def _read_phys(self, phys: int, n: int) -> bytes:
        call, read = self._d.memory_call, self._d.iut.read_phys
        return b"".join(bytes(call(read, phys + off, min(_IO_LIMIT, n - off))) for off in range(0, n, _IO_LIMIT))

    def _fill(self, region: _Region) -> None:
        for off, n in region.spans():
            self._d.memory_call(self._d.iut.write_phys, region.phys + off, _pattern(region.seed, off, n))

    def _differs(self, region: _Region, whole: bool) -> Difference | None:
        for off, n in region.spans() if whole else region.sites():
            want = _pattern(region.seed, off, n)
            at = _first_difference(want, self._read_phys(region.phys + off, n))
            if at is not None:
                start = off + at - at % _SITE
                return Difference(region.phys + start, start, _pattern(region.seed, start, min(_SITE, region.size - start)),
                                  self._read_phys(region.phys + start, min(_SITE, region.size - start)))
        return None

    def _zero_at(self, phys: int, n: int) -> int | None:
        """The offset of the first non-zero byte of ``n`` bytes at ``phys``, or None."""
        for off in range(0, n, _IO_LIMIT):
            m = min(_IO_LIMIT, n - off)
            at = _first_difference(bytes(m), self._read_phys(phys + off, m))
            if at is not None:
                return off + at
        return None

    # -- page blocks -------------------------------------------------------------------

    def write_block(self, blk: LiveBlock) -> None:
        ps = self._d.machine.page_size
        seed = hashlib.blake2b(f"{blk.pfn}:{blk.order}:{blk.step}".encode(), digest_size=_DIGEST).digest()
        region = self._blocks[blk.pfn] = _Region(seed, blk.pfn * ps, ps << blk.order, self.sparse)
        self._fill(region)

    def verify_block(self, blk: LiveBlock, *, whole: bool = True) -> None:
        region = self._blocks.get(blk.pfn)
        if region is None:
            return
        self._d.coverage["PAGE-CONTENTS-INTACT"] += 1
        diff = self._differs(region, whole)
        if diff is not None:
            pfn = diff.phys >> self._d.machine.page_shift
            raise self._d.fail("PAGE-CONTENTS-INTACT", f"the order-{blk.order} block at pfn {blk.pfn:#x} (allocated at step {blk.step}) "
                                                       f"changed while live, in pfn {pfn:#x}: {diff}")

    def verify_blocks(self, *, whole: bool = False, near: int | None = None) -> None:
        """Every live block whole; or (a refused misuse) at their sites, the SPOT_LIMIT blocks nearest pfn ``near``
        and the SPOT_LIMIT newest, so the check costs O(1) however many blocks are live."""
        live = self._d.model.live
        if whole:
            pfns: list[int] = list(self._blocks)
        else:
            pfns = list(dict.fromkeys([*(b.pfn for b in (live.nearest(near, SPOT_LIMIT) if near is not None else ())),
                                       *itertools.islice(reversed(self._blocks), SPOT_LIMIT)]))
        for pfn in pfns:
            if pfn in self._blocks:
                self.verify_block(live[pfn], whole=whole)

    def forget_block(self, pfn: int) -> None:
        self._blocks.pop(pfn, None)

    def verify_block_zero(self, blk: LiveBlock) -> None:
        self._d.coverage["API-ZERO"] += 1
        ps = self._d.machine.page_size
        at = (next((off + a for off, n in _Region(b"", 0, ps << blk.order).sites() if (a := self._zero_at(blk.pfn * ps + off, n)) is not None), None)
              if self.sparse else self._zero_at(blk.pfn * ps, ps << blk.order))
        if at is not None:
            pfn, off = blk.pfn + at // ps, at % ps
            data = self._read_phys(pfn * ps + off, 1)
            raise self._d.fail("API-ZERO", f"the order-{blk.order} block at pfn {blk.pfn:#x} was allocated with __GFP_ZERO but byte {off} of pfn {pfn:#x} reads {data[0]:#04x}")

    # -- objects ---------------------------------------------------------------------------

    def write_object(self, obj: LiveObject) -> None:
        if not self.enabled:
            return
        seed = hashlib.blake2b(f"{obj.addr}:{obj.size}:{obj.step}".encode(), digest_size=_DIGEST).digest()
        region = self._objects[obj.addr] = _Region(seed, self._d.machine.virt_to_phys(obj.addr), obj.size)
        self._fill(region)

    def object_pattern(self, addr: int, n: int) -> bytes:
        """The first ``n`` bytes the caller wrote into the live object at ``addr`` (what krealloc must carry); empty where
        memory is not exposed."""
        region = self._objects.get(addr)
        return b"" if region is None else _pattern(region.seed, 0, min(n, region.size))

    def difference(self, addr: int, want: bytes) -> Difference | None:
        """Where the bytes at logical address ``addr`` depart from ``want``, or None."""
        phys = self._d.machine.virt_to_phys(addr)
        at = _first_difference(want, self.read(addr, len(want)))
        if at is None:
            return None
        start = at - at % _SITE
        return Difference(phys + start, start, want[start:start + _SITE], self._read_phys(phys + start, min(_SITE, len(want) - start)))

    def verify_object(self, obj: LiveObject, *, whole: bool = True) -> None:
        region = self._objects.get(obj.addr)
        if region is None or not self.enabled:
            return
        self._d.coverage["SLAB-CONTENTS-INTACT"] += 1
        diff = self._differs(region, whole)
        if diff is not None:
            raise self._d.fail("SLAB-CONTENTS-INTACT", f"{obj.describe()} changed while live: {diff}")

    def verify_objects(self, *, whole: bool = False) -> None:
        """Every live object whole; or (a refused misuse) the SPOT_LIMIT newest at their sites."""
        for addr in list(self._objects) if whole else list(itertools.islice(reversed(self._objects), SPOT_LIMIT)):
            obj = self._d.slab.objects.get(addr)
            if obj is not None:
                self.verify_object(obj, whole=whole)

    def forget_object(self, addr: int) -> None:
        self._objects.pop(addr, None)

    def verify_object_zero(self, obj: LiveObject, what: object) -> None:
        self._d.coverage["KZALLOC-ZERO"] += 1
        at = self._zero_at(self._d.machine.virt_to_phys(obj.addr), obj.size)
        if at is not None:
            raise self._d.fail("KZALLOC-ZERO", f"{what} returned {obj.addr:#x} zeroed, but byte {at} reads {self.read(obj.addr + at, 1)[0]:#04x}")

    # -- everything ---------------------------------------------------------------------------

    def verify_all(self, *, whole: bool = False) -> None:
        """Every live block and object intact: at its sites after a refused misuse, whole in check_contents."""
        self.verify_blocks(whole=whole)
        self.verify_objects(whole=whole)
