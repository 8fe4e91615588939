"""The page allocator's steps: alloc_pages, free_pages, __get_free_pages, free_pages(addr), the free area, contents, contexts.

Each allocation is checked against the buddy oracle's placement rules, adopted,
zero-checked where __GFP_ZERO was asked and given a pattern; each free
verifies the pattern first. A block a layer above holds (a slab, a large
kmalloc block) is judged by that layer's checker (``Lockstep.free_owned_block``).
"""

from __future__ import annotations

from typing import Any, Callable

from ...refmodel.context import Context
from ...refmodel.gfp import GFP_INT, ZoneType, format_gfp
from ...refmodel.page_alloc import Expectation, Outcome
from ...refmodel.rules import rule_ids
from ..trace import Step
from ._checker import Checker, register_checker

_PLACEMENT_RULES = rule_ids("BUDDY-ORDER-LIMIT", "BUDDY-ALIGN", "PAGE-RAM-ONLY", "BUDDY-NO-CROSS-ZONE", "GFP-ZONE-ELIGIBLE", "BUDDY-NO-OVERLAP",
                            where="harness/lockstep/pages.py")
_ZERO = GFP_INT.ZERO


class PageChecker(Checker):
    """alloc_pages and friends, judged against the buddy oracle."""

    subsystem = "pages"
    steps = ("set_context", "alloc_pages", "free_pages", "get_free_pages", "free_pages_addr", "fill", "check_free_area", "check_zone_free",
             "check_contents")

    def __init__(self, driver: Any) -> None:
        super().__init__(driver)
        self.zone_free = "zone_free_pages" in driver.capabilities

    def set_context(self, ctx: Context) -> None:
        """Enter execution context ``ctx`` (process, atomic, softirq, hardirq)."""
        ctx = Context(ctx)
        self.d.trace.append(Step("set_context", {"ctx": int(ctx)}))
        self.d.env.context = ctx

    def alloc_pages(self, gfp: int, order: int) -> int | None:
        """alloc_pages(gfp, order): the first PFN of a 2^order block, or None."""
        d = self.d
        e = self._expect(gfp, order, logical=False)
        step, result, refused = d.step("alloc_pages", {"gfp": gfp, "order": order}, e, lambda: d.iut.alloc_pages(gfp, order), gfp=gfp)
        if refused:  # a reported misuse, refused: nothing was allocated
            return None
        d.requests[f"order-{order}", result is not None] += 1
        if result is None:
            return d.expect_null(e, f"alloc_pages({format_gfp(gfp)}, order={order})")
        pfn = d.int_result(result, "alloc_pages")
        self._place(gfp, order, pfn, logical=False)
        if not d.quiet:
            step.result = d.names.bind_block("pfn", pfn, pfn)
        return pfn

    def fill(self, gfp: int, order: int) -> list[int]:
        """alloc_pages(gfp, k) for k from MAX_PAGE_ORDER down to ``order``, each until NULL; the blocks' first PFNs.

        One trace step (``fill_N = iut.fill(...)``, its blocks ``fill_N[i]``) that
        takes the eligible zones to their watermarks and to exhaustion in
        O(pages / 2^MAX_PAGE_ORDER + MAX_PAGE_ORDER) allocations, each judged as
        alloc_pages; the blocks carry their pattern at their sites only.
        """
        d = self.d
        step = d.record("fill", {"gfp": gfp, "order": order})
        name = step.result = d.names.bind_list("fill")
        got: list[int] = []
        d.quiet, d.contents.sparse = True, True
        try:
            for k in range(d.machine.max_page_order, max(order, 0) - 1, -1):
                for _ in range(sum(d.model.nr_free.values()) // (1 << k) + 2):  # a bound, should the implementation never say no
                    pfn = self.alloc_pages(gfp, k)
                    if pfn is None:
                        break
                    d.names.bind_item(f"{name}[{len(got)}]", pfn, pfn)
                    got.append(pfn)
        finally:
            d.quiet, d.contents.sparse = False, False
        if self.zone_free:
            for zone in {d.machine.zone_of_pfn(p).zone_type for p in got}:  # type: ignore[union-attr]
                self._compare_zone_free(zone)
        return got

    def free_pages(self, pfn: int, order: int) -> None:
        """free_pages(pfn, order) (the kernel's __free_pages(pfn_to_page(pfn), order))."""
        d = self.d
        call = lambda: d.iut.free_pages(pfn, order)  # noqa: E731
        values = {"pfn": pfn, "order": order}
        if d.free_owned_block("free_pages", values, pfn, order, call):
            return
        self._free("free_pages", values, d.model.expect_free(pfn, order), pfn, order, call)

    def get_free_pages(self, gfp: int, order: int) -> int:
        """__get_free_pages(gfp, order): a logical address, or 0."""
        d = self.d
        e = self._expect(gfp, order, logical=True)
        step, result, refused = d.step("get_free_pages", {"gfp": gfp, "order": order}, e, lambda: d.iut.get_free_pages(gfp, order), gfp=gfp)
        if refused:
            return 0
        d.requests[f"order-{order}", result not in (None, 0)] += 1
        if result is None or result == 0:
            d.expect_null(e, f"__get_free_pages({format_gfp(gfp)}, order={order})")
            return 0
        addr = d.int_result(result, "get_free_pages")
        pfn = d.machine.virt_to_pfn(addr)
        d.coverage["API-LOWMEM-ADDRESS"] += 1
        if pfn is None or addr % d.machine.page_size:
            raise d.fail("API-LOWMEM-ADDRESS", f"__get_free_pages({format_gfp(gfp)}, order={order}) returned {addr:#x}, which is not the page-aligned logical address of a lowmem page")
        self._place(gfp, order, pfn, logical=True)
        step.result = d.names.bind_block("addr", addr, pfn)
        return addr

    def free_pages_addr(self, addr: int, order: int) -> None:
        """free_pages(addr, order) on a logical address; free_pages(0, order) does nothing."""
        d = self.d
        e, pfn = d.model.expect_free_addr(addr, order)
        call = lambda: d.iut.free_pages_addr(addr, order)  # noqa: E731
        values = {"addr": addr, "order": order}
        # virt_to_page() rounds down: any address in a slab's first page frees that slab page.
        if pfn is not None and d.free_owned_block("free_pages_addr", values, pfn, order, call):
            return
        if pfn is None and e.report is None:  # free_pages(0): nothing to adopt
            d.step("free_pages_addr", values, e, call, false_report_rule="API-FREE-ADDR-NULL")
            d.coverage["API-FREE-ADDR-NULL"] += 1
            return
        self._free("free_pages_addr", values, e, pfn if pfn is not None else -1, order, call)

    def check_free_area(self) -> None:
        """INTROSPECT-FREE-AREA: the implementation's free blocks cover exactly the free pages."""
        d = self.d
        if "free_area" not in d.capabilities:
            return
        d.trace.append(Step("check_free_area"))
        blocks, _ = d.call(None, None, d.iut.free_area)
        try:
            rows = [_free_row(row) for row in blocks]
        except (TypeError, ValueError):
            raise d.fail("IUT-RETURN-TYPE", f"free_area() returned {type(blocks).__name__}; it must return a list of (pfn, order) "
                                            "or (pfn, order, count) rows") from None
        d.coverage["INTROSPECT-FREE-AREA"] += 1
        # Pages a layer holds invisibly (slabs without slabs()): then only "free here is free there".
        d.checked(lambda: d.model.check_free_area(rows, exact=not d.model.opaque))

    def at_end(self) -> None:
        """Contents, free area and zone counts, as the last steps of an example."""
        self.check_contents()
        self.check_free_area()
        self.check_zone_free()

    def check_zone_free(self) -> None:
        """INTROSPECT-ZONE-FREE for every populated zone."""
        d = self.d
        if "zone_free_pages" not in d.capabilities:
            return
        d.trace.append(Step("check_zone_free"))
        for zone in d.machine.populated_zones:
            self._compare_zone_free(zone.zone_type)

    def _zone_free(self, pfn: int) -> None:
        """INTROSPECT-ZONE-FREE for the zone of ``pfn``, after the step that touched it (a leak is seen where it happens;
        a fill step checks its zones once, at its end)."""
        zone = self.d.machine.zone_of_pfn(pfn) if self.zone_free and not self.d.quiet else None
        if zone is not None:
            self._compare_zone_free(zone.zone_type, pfn)

    def _compare_zone_free(self, zone: ZoneType, near: int | None = None) -> None:
        d = self.d
        if d.model.opaque:  # a layer holds pages the model cannot see: the count is not the model's to know
            return
        result, _ = d.call(None, None, lambda: d.iut.zone_free_pages(int(zone)))
        n = d.int_result(result, "zone_free_pages")
        d.coverage["INTROSPECT-ZONE-FREE"] += 1
        d.checked(lambda: d.model.check_zone_free(zone, n, near))

    def check_contents(self) -> None:
        """PAGE-CONTENTS-INTACT for every live block (where memory is exposed)."""
        d = self.d
        if not d.check_memory:
            return
        d.trace.append(Step("check_contents"))
        d.contents.verify_all(whole=True)

    # -- judging ---------------------------------------------------------------------------

    def _expect(self, gfp: int, order: int, *, logical: bool) -> Expectation:
        d = self.d
        e = d.model.expect_alloc(gfp, order, d.env.context, logical=logical)
        d.outcomes[e.outcome.name] += 1
        if e.outcome is Outcome.MUST_SUCCEED and d.binds(e.rule_id):
            d.coverage[e.rule_id] += 1
        return e

    def _place(self, gfp: int, order: int, pfn: int, *, logical: bool) -> None:
        d = self.d
        for rule in _PLACEMENT_RULES:
            d.coverage[rule] += 1
        d.checked(lambda: d.model.check_alloc(gfp, order, pfn, logical=logical))
        for check in d.on_page_block:  # the layers above: a page block holds none of their objects
            check(pfn, order)
        if "WMARK-RESERVES-KEPT" in d.claims:
            d.coverage["WMARK-RESERVES-KEPT"] += 1
            d.checked(lambda: d.model.check_reserves(gfp, order, pfn, logical=logical))
        blk = d.model.adopt_alloc(gfp, order, pfn, step=len(d.trace) - 1)
        if d.check_memory:
            if gfp & _ZERO:
                d.contents.verify_block_zero(blk)
            d.contents.write_block(blk)
        self._zone_free(pfn)

    def _free(self, op: str, values: dict[str, Any], e: Expectation, pfn: int, order: int, call: Callable[[], Any]) -> None:
        d = self.d
        valid = e.report is None

        def verify_first() -> None:
            if valid and d.check_memory:
                d.contents.verify_block(d.model.live[pfn])

        _, result, _ = d.step(op, values, e, call, before=verify_first)
        d.none_result(result, "a free")
        if valid:
            d.model.adopt_free(pfn, order)
            d.contents.forget_block(pfn)
            d.names.forget_block(pfn)
        elif d.check_memory:
            d.contents.verify_blocks(near=pfn)  # a refused misuse leaves the live blocks intact
        self._zone_free(pfn)


def _free_row(row: Any) -> tuple[int, int, int]:
    """A free_area() row: (pfn, order) or (pfn, order, count) of ints (count consecutive blocks from pfn)."""
    if isinstance(row, (str, bytes)) or len(row) not in (2, 3) or any(isinstance(v, bool) or not isinstance(v, int) for v in row):
        raise TypeError(row)
    return (row[0], row[1], row[2] if len(row) == 3 else 1)


register_checker(PageChecker)
