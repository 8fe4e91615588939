"""`reference`: the oracle itself plus a simple deterministic placement. Slow and obviously correct.

It serves a request exactly when the buddy oracle (refmodel/page_alloc.py)
says it must succeed, from the lowest-addressed free block of the smallest
sufficient order in the first zone of the zonelist that passes the
low-watermark check (mm/page_alloc.c get_page_from_freelist), and reports
every misuse the oracle names. Memory is a sparse page store.
"""

from __future__ import annotations

from ...refmodel.errors import InvalidGfp
from ...refmodel.gfp import GFP, gfp_zone_bad, gfpflags_allow_blocking
from ...refmodel.machine import Machine
from ...refmodel.page_alloc import Outcome, PageAllocModel
from ...refmodel.rules import RULES
from ..protocol import Env
from ._memory import SparseMemory


class ReferenceAllocator:
    """The model as an allocator. Claims every page detection."""

    capabilities = frozenset({"pages", "get_free_pages", "memory", "free_area"})
    claims = frozenset(r.id for r in RULES if r.subsystem == "pages" and r.needs_claim)

    def __init__(self, machine: Machine, env: Env) -> None:
        self.machine = machine
        self.env = env
        self.model = PageAllocModel(machine)
        self.memory = SparseMemory(machine.page_size)

    def alloc_pages(self, gfp: int, order: int) -> int | None:
        return self._alloc(gfp, order, logical=False)

    def free_pages(self, pfn: int, order: int) -> None:
        e = self.model.expect_free(pfn, order)
        if e.report is not None:
            raise e.report(e.misuse)
        self.model.adopt_free(pfn, order)

    def get_free_pages(self, gfp: int, order: int) -> int:
        pfn = self._alloc(gfp & ~GFP.HIGHMEM, order, logical=True)
        return 0 if pfn is None else self.machine.pfn_to_virt(pfn)

    def free_pages_addr(self, addr: int, order: int) -> None:
        e, pfn = self.model.expect_free_addr(addr, order)
        if e.report is not None:
            raise e.report(e.misuse)
        if pfn is not None:
            self.model.adopt_free(pfn, order)

    def read_phys(self, phys_addr: int, length: int) -> bytes:
        return self.memory.read(phys_addr, length)

    def write_phys(self, phys_addr: int, data: bytes) -> None:
        self.memory.write(phys_addr, data)

    def free_area(self) -> list[tuple[int, int]]:
        return [blk for blocks in self.model.free_blocks().values() for blk in blocks]

    def _alloc(self, gfp: int, order: int, *, logical: bool) -> int | None:
        if gfp_zone_bad(gfp):
            raise InvalidGfp(f"gfp {gfp:#x} sets more than one zone modifier")
        if gfpflags_allow_blocking(gfp):
            self.env.might_sleep()
        e = self.model.expect_alloc(gfp, order, logical=logical)
        if e.outcome is not Outcome.MUST_SUCCEED:
            return None
        pfn = self._place(gfp, order, logical)
        self.model.adopt_alloc(gfp, order, pfn)
        if gfp & GFP.ZERO:
            self.memory.zero_pages(pfn, 1 << order)
        return pfn

    def _place(self, gfp: int, order: int, logical: bool) -> int:
        high = self.model.highest_zoneidx(gfp)
        zones = [z for z in self.model.eligible_zones(gfp) if self.model.has_free_block(z, order)]
        if logical:
            zones = [z for z in zones if self.machine.zone(z).end_pfn <= self.machine.max_low_pfn]
        ok = [z for z in zones if self.model.watermark_ok(z, order, high)] or zones
        area = self.model.free_area[ok[0]]
        k = next(k for k in range(order, self.model.max_order + 1) if area[k])
        return min(area[k])


def make(machine: Machine, env: Env) -> ReferenceAllocator:
    return ReferenceAllocator(machine, env)
