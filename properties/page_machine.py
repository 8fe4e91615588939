"""The page-allocator state machine: alloc_pages/free_pages sequences, valid and invalid, in lockstep.

Each example builds a fresh implementation inside a ``Lockstep`` (so
shrinking and replay are exact) and draws: allocations with generated GFP
masks and orders 0..MAX_PAGE_ORDER+1 in generated contexts, frees of live
blocks, __get_free_pages/free_pages on logical addresses, zone-filling runs
that reach the watermark band and exhaustion, and misuse (double free, wrong
order, interior PFN, never-allocated PFN, bad address, bad GFP zone
combination, blocking allocation in atomic context), the last only against
implementations that claim the detection. Checks live in the lockstep
checker; this module only decides what to try.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, ClassVar

from hypothesis import assume
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, consumes, multiple, precondition, rule

from ..harness.lockstep import Lockstep
from ..harness.protocol import Factory
from ..refmodel.context import Context, in_atomic
from ..refmodel.gfp import GFP, GFP_ATOMIC, GFP_KERNEL
from ..refmodel.machine import Machine
from .strategies import bad_gfp_masks, contexts, gfp_masks, orders

_COMP = int(GFP.COMP)

#: Zone-filling runs only on machines this small (pages), so one step stays cheap.
FILL_LIMIT_PAGES = 4096


@dataclass(frozen=True)
class Block:
    """A live block as the state machine holds it: first PFN (or logical address) and order."""

    start: int
    order: int


@dataclass
class Target:
    """What a run checks: the implementation's factory and label, the machine, what it declared."""

    factory: Factory
    label: str
    machine: Machine
    capabilities: frozenset[str]
    claims: frozenset[str]
    on_example: Callable[[Lockstep], None] = lambda iut: None
    on_teardown: Callable[[Lockstep], None] = lambda iut: None


def _claims(rule_id: str) -> Callable[[Any], bool]:
    return lambda self: rule_id in self.target.claims


def _has(capability: str) -> Callable[[Any], bool]:
    return lambda self: capability in self.target.capabilities


class PageStateMachine(RuleBasedStateMachine):
    """Lockstep sequences on the page allocator. Subclass with ``for_target``; do not run directly."""

    target: ClassVar[Target]
    blocks = Bundle("blocks")
    addrs = Bundle("addrs")

    def __init__(self) -> None:
        super().__init__()
        self.iut = Lockstep(self.target.factory, self.target.machine, label=self.target.label)
        self.max_order = self.target.machine.max_page_order
        self.target.on_example(self.iut)

    @classmethod
    def for_target(cls, target: Target) -> type[PageStateMachine]:
        return type(f"PageStateMachine_{target.label}", (cls,), {"target": target})

    # -- valid operations ------------------------------------------------------------

    @precondition(lambda self: not in_atomic(self.iut.env.context))
    @rule(target=blocks, gfp=gfp_masks(blocking=True), data=st.data())
    def alloc_blocking(self, gfp: int, data: st.DataObject) -> Any:
        return self._alloc(gfp, data.draw(orders(self.max_order), label="order"))

    @rule(target=blocks, gfp=gfp_masks(blocking=False), data=st.data())
    def alloc_atomic(self, gfp: int, data: st.DataObject) -> Any:
        return self._alloc(gfp, data.draw(orders(self.max_order), label="order"))

    @rule(block=consumes(blocks))
    def free(self, block: Block) -> None:
        self.iut.free_pages(block.start, block.order)

    @rule(ctx=contexts())
    def set_context(self, ctx: Context) -> None:
        self.iut.set_context(ctx)

    @precondition(lambda self: self.iut.machine.max_pfn <= FILL_LIMIT_PAGES)
    @rule(target=blocks, gfp=gfp_masks(blocking=False), data=st.data())
    def fill(self, gfp: int, data: st.DataObject) -> Any:
        """Allocate until the implementation says no: reaches the watermark band and MUST_FAIL."""
        order = data.draw(st.integers(0, self.max_order), label="order")
        got = []
        for _ in range(self.iut.machine.max_pfn // (1 << order) + 2):
            pfn = self.iut.alloc_pages(gfp, order)
            if pfn is None:
                break
            got.append(Block(pfn, order))
        return multiple(*got)

    @precondition(lambda self: "get_free_pages" in self.target.capabilities and not in_atomic(self.iut.env.context))
    @rule(target=addrs, gfp=gfp_masks(blocking=True), data=st.data())
    def get_free_pages_blocking(self, gfp: int, data: st.DataObject) -> Any:
        return self.get_free_pages(gfp, data)

    @precondition(lambda self: self.iut.machine.max_pfn <= FILL_LIMIT_PAGES and not in_atomic(self.iut.env.context))
    @rule(target=blocks)
    def nofail_under_pressure(self) -> Any:
        """Fill with GFP_ATOMIC until it fails, then a blocking __GFP_NOFAIL request: NOFAIL-NEVER-NULL's band."""
        got = []
        for _ in range(self.iut.machine.max_pfn + 2):
            pfn = self.iut.alloc_pages(int(GFP_ATOMIC), 0)
            if pfn is None:
                break
            got.append(Block(pfn, 0))
        pfn = self.iut.alloc_pages(int(GFP_KERNEL | GFP.NOFAIL), 0)
        if pfn is not None:
            got.append(Block(pfn, 0))
        return multiple(*got)

    @precondition(_has("get_free_pages"))
    @rule(target=addrs, gfp=gfp_masks(blocking=False), data=st.data())
    def get_free_pages(self, gfp: int, data: st.DataObject) -> Any:
        order = data.draw(orders(self.max_order), label="order")
        addr = self.iut.get_free_pages(gfp, order)
        return multiple() if addr == 0 else Block(addr, order)

    @precondition(_has("get_free_pages"))
    @rule(block=consumes(addrs))
    def free_addr(self, block: Block) -> None:
        self.iut.free_pages_addr(block.start, block.order)

    @precondition(_has("get_free_pages"))
    @rule(order=st.integers(0, 3))
    def free_addr_null(self, order: int) -> None:
        self.iut.free_pages_addr(0, order)

    @precondition(_has("free_area"))
    @rule()
    def check_free_area(self) -> None:
        self.iut.check_free_area()

    @precondition(_has("memory"))
    @rule()
    def check_contents(self) -> None:
        self.iut.check_contents()

    # -- misuse, only where claimed ----------------------------------------------------

    @precondition(_claims("BUDDY-DOUBLE-FREE"))
    @rule(block=consumes(blocks))
    def double_free(self, block: Block) -> None:
        self.iut.free_pages(block.start, block.order)
        self.iut.free_pages(block.start, block.order)

    @precondition(_claims("BUDDY-DOUBLE-FREE"))
    @rule(data=st.data())
    def free_never_allocated(self, data: st.DataObject) -> None:
        m = self.iut.machine
        ranges = [r for z in m.populated_zones for r in m.zone_free_ranges(z)]
        r = data.draw(st.sampled_from(ranges), label="range")
        pfn = data.draw(st.integers(r.start, r.end - 1), label="pfn")
        # Once the slab layer holds pages the model cannot see, "free" here may be a slab page.
        assume(self.iut.model.live_block_at(pfn) is None and not self.iut.slab.opaque)
        self.iut.free_pages(pfn, data.draw(st.integers(0, self.max_order), label="order"))

    @precondition(_claims("BUDDY-FREE-WRONG-ORDER"))
    @rule(data=st.data())
    def free_wrong_order(self, data: st.DataObject) -> None:
        # The kernel checks the order only for compound pages; elsewhere it is undefined.
        slabs = self.iut.slab.slab_blocks  # the slab layer's blocks have their own rule (SLAB-PAGE-BAD-FREE)
        compound = sorted(b.pfn for b in self.iut.model.live.values() if b.order > 0 and b.gfp & _COMP and b.pfn not in slabs)
        assume(compound)
        live = self.iut.model.live[data.draw(st.sampled_from(compound), label="pfn")]
        order = data.draw(st.integers(0, self.max_order).filter(lambda o: o != live.order), label="order")
        self.iut.free_pages(live.pfn, order)

    @precondition(_claims("BUDDY-FREE-WRONG-ORDER"))
    @rule(target=blocks, gfp=gfp_masks(blocking=False), order=st.integers(1, 3))
    def alloc_compound(self, gfp: int, order: int) -> Any:
        return self._alloc(gfp | GFP.COMP, min(order, self.max_order))

    @precondition(_claims("BUDDY-FREE-INTERIOR"))
    @rule(block=blocks, data=st.data())
    def free_interior(self, block: Block, data: st.DataObject) -> None:
        assume(block.order > 0 and block.start in self.iut.model.live)
        offset = data.draw(st.integers(1, (1 << block.order) - 1), label="offset")
        self.iut.free_pages(block.start + offset, data.draw(st.integers(0, block.order), label="order"))

    @precondition(_claims("BUDDY-BAD-FREE"))
    @rule(data=st.data())
    def free_bad_pfn(self, data: st.DataObject) -> None:
        m = self.iut.machine
        # Reserved pages and holes that have a struct page; a PFN with none is undefined.
        candidates = [r.start for r in m.reserved] + [a.end for a, b in zip(m.ram, m.ram[1:])]
        candidates = [pfn for pfn in candidates if m.pfn_valid(pfn) and m.usable_range_of(pfn) is None]
        assume(candidates)
        self.iut.free_pages(data.draw(st.sampled_from(candidates), label="pfn"), 0)

    @precondition(lambda self: "API-FREE-BAD-ADDRESS" in self.target.claims and "get_free_pages" in self.target.capabilities)
    @rule(data=st.data())
    def free_bad_addr(self, data: st.DataObject) -> None:
        m = self.iut.machine
        beyond = -(-m.max_pfn >> (m.section_size_bits - m.page_shift)) << (m.section_size_bits - m.page_shift)
        candidates = [m.page_offset - m.page_size, m.page_size]
        if m.page_offset + (beyond << m.page_shift) < 1 << m.word_bits:
            candidates.append(m.page_offset + (beyond << m.page_shift))  # no struct page there
        self.iut.free_pages_addr(data.draw(st.sampled_from(candidates), label="addr"), 0)

    @precondition(lambda self: "GFP-ZONE-BAD" in self.target.claims and not in_atomic(self.iut.env.context))
    @rule(target=blocks, gfp=bad_gfp_masks(), order=st.integers(0, 2))
    def alloc_bad_gfp(self, gfp: int, order: int) -> Any:
        return self._alloc(gfp, order)

    @precondition(lambda self: "CTX-MIGHT-SLEEP" in self.target.claims and in_atomic(self.iut.env.context))
    @rule(target=blocks, gfp=gfp_masks(blocking=True), order=st.integers(0, 2))
    def alloc_blocking_in_atomic(self, gfp: int, order: int) -> Any:
        return self._alloc(gfp, order)

    # -- helpers ---------------------------------------------------------------------------

    def _alloc(self, gfp: int, order: int) -> Any:
        pfn = self.iut.alloc_pages(gfp, order)
        return multiple() if pfn is None else Block(pfn, order)

    def teardown(self) -> None:
        try:
            if not self.iut.failed:  # after a failure the two are out of step: report the first one
                self.iut.check_contents()
                self.iut.check_free_area()
        finally:
            self.iut.close()
            self.target.on_teardown(self.iut)
