"""Memory contents: the patterns the suite writes into what it holds, and the zero checks.

Where an implementation exposes its memory (capability ``memory``), every
live page block and object carries a pattern the caller wrote; it must read
back unchanged until the free (PAGE-CONTENTS-INTACT, SLAB-CONTENTS-INTACT),
and what was asked zeroed must read zero (API-ZERO, KZALLOC-ZERO). One
region abstraction serves both: page blocks by PFN, objects by logical
address, converted with the machine's ``virt_to_phys``.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

from ...refmodel.page_alloc import LiveBlock
from ...refmodel.slab import LiveObject

if TYPE_CHECKING:
    from . import Lockstep

_PATTERN_LEN = 16  # bytes written at each site of a page block
_SITE = 16  # pattern bytes at the start and at the end of an object
ZERO_CHECK_LIMIT = 1 << 16  # bytes of a zeroed object read back


class Contents:
    """Patterns of live page blocks and objects, written and verified through read_phys/write_phys."""

    def __init__(self, driver: Lockstep) -> None:
        self._d = driver
        self.enabled = driver.check_memory
        self._page_patterns: dict[int, bytes] = {}  # live block first pfn -> its pattern
        self._obj_patterns: dict[int, list[bytes]] = {}  # live object address -> its patterns

    # -- raw access ------------------------------------------------------------------

    def read(self, addr: int, n: int) -> bytes:
        """``n`` bytes at logical address ``addr``."""
        return bytes(self._d.memory_call(self._d.iut.read_phys, self._d.machine.virt_to_phys(addr), n))

    def write(self, addr: int, data: bytes) -> None:
        self._d.memory_call(self._d.iut.write_phys, self._d.machine.virt_to_phys(addr), data)

    # -- page blocks -------------------------------------------------------------------

    def _page_sites(self, blk: LiveBlock) -> list[int]:
        ps = self._d.machine.page_size
        first = blk.pfn * ps
        last = (blk.end_pfn * ps) - _PATTERN_LEN
        mid = (blk.pfn + (1 << blk.order) // 2) * ps + ps // 2
        return sorted({first, mid, last})

    def write_block(self, blk: LiveBlock) -> None:
        pattern = hashlib.blake2b(f"{blk.pfn}:{blk.order}:{blk.step}".encode(), digest_size=_PATTERN_LEN).digest()
        self._page_patterns[blk.pfn] = pattern
        for site in self._page_sites(blk):
            self._d.memory_call(self._d.iut.write_phys, site, pattern)

    def verify_block(self, blk: LiveBlock) -> None:
        pattern = self._page_patterns.get(blk.pfn)
        if pattern is None:
            return
        self._d.coverage["PAGE-CONTENTS-INTACT"] += 1
        for site in self._page_sites(blk):
            got = self._d.memory_call(self._d.iut.read_phys, site, _PATTERN_LEN)
            if bytes(got) != pattern:
                raise self._d.fail("PAGE-CONTENTS-INTACT", f"the order-{blk.order} block at pfn {blk.pfn:#x} (allocated at step {blk.step}) "
                                                           f"changed while live: at physical address {site:#x} the caller wrote {pattern.hex()}, it now reads {bytes(got).hex()}")

    def verify_blocks(self) -> None:
        for pfn in list(self._page_patterns):
            self.verify_block(self._d.model.live[pfn])

    def forget_block(self, pfn: int) -> None:
        self._page_patterns.pop(pfn, None)

    def verify_block_zero(self, blk: LiveBlock) -> None:
        self._d.coverage["API-ZERO"] += 1
        ps = self._d.machine.page_size
        for pfn in sorted({blk.pfn, blk.pfn + (1 << blk.order) // 2, blk.end_pfn - 1}):
            data = bytes(self._d.memory_call(self._d.iut.read_phys, pfn * ps, ps))
            if data != bytes(ps):
                off = next(i for i, b in enumerate(data) if b)
                raise self._d.fail("API-ZERO", f"the order-{blk.order} block at pfn {blk.pfn:#x} was allocated with __GFP_ZERO but byte {off} of pfn {pfn:#x} reads {data[off]:#04x}")

    # -- objects ---------------------------------------------------------------------------

    def _object_sites(self, obj: LiveObject) -> list[tuple[int, int]]:
        head = min(_SITE, obj.size)
        sites = [(obj.addr, head)]
        if obj.size >= 2 * _SITE:
            sites.append((obj.addr + obj.size - _SITE, _SITE))
        return sites

    def object_head(self, addr: int, n: int) -> bytes:
        """The first ``n`` (at most 16) pattern bytes of the live object at ``addr``."""
        return self._obj_patterns[addr][0][:min(_SITE, n)]

    def write_object(self, obj: LiveObject) -> None:
        if not self.enabled:
            return
        seed = hashlib.blake2b(f"{obj.addr}:{obj.size}:{obj.step}".encode(), digest_size=2 * _SITE).digest()
        chunks = [seed[:n] if i == 0 else seed[_SITE:_SITE + n] for i, (_, n) in enumerate(self._object_sites(obj))]
        self._obj_patterns[obj.addr] = chunks
        for (site, _), chunk in zip(self._object_sites(obj), chunks):
            self.write(site, chunk)

    def verify_object(self, obj: LiveObject) -> None:
        chunks = self._obj_patterns.get(obj.addr)
        if not chunks or not self.enabled:
            return
        self._d.coverage["SLAB-CONTENTS-INTACT"] += 1
        for (site, n), chunk in zip(self._object_sites(obj), chunks):
            got = self.read(site, n)
            if got != chunk:
                raise self._d.fail("SLAB-CONTENTS-INTACT", f"{obj.describe()} changed while live: at {site:#x} the caller wrote {chunk.hex()}, it now reads {got.hex()}")

    def verify_objects(self) -> None:
        for addr in list(self._obj_patterns):
            obj = self._d.slab.objects.get(addr)
            if obj is not None:
                self.verify_object(obj)

    def forget_object(self, addr: int) -> None:
        self._obj_patterns.pop(addr, None)

    def verify_object_zero(self, obj: LiveObject, what: object) -> None:
        self._d.coverage["KZALLOC-ZERO"] += 1
        n = min(obj.size, ZERO_CHECK_LIMIT)
        data = self.read(obj.addr, n)
        if data != bytes(n):
            off = next(i for i, b in enumerate(data) if b)
            raise self._d.fail("KZALLOC-ZERO", f"{what} returned {obj.addr:#x} zeroed, but byte {off} reads {data[off]:#04x}")

    # -- everything ---------------------------------------------------------------------------

    def verify_all(self) -> None:
        """Every live block and object intact: after a refused misuse, and in check_contents."""
        self.verify_blocks()
        self.verify_objects()
