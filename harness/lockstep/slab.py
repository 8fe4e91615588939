"""The slab layer's steps (kmem_cache_*), and the object mechanics kmalloc's steps share.

``SlabLayer`` is what every object step does: call the implementation and
then, where it shows its slabs, take them into the page model
(SLAB-INTROSPECT); check a returned object (lowmem RAM, zone, alignment, no
overlap), adopt it, zero-check it and give it a pattern; verify the pattern
before a free. ``SlabChecker`` holds the kmem_cache_* steps and answers for
the page blocks the slab layer owns when they are given to free_pages.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from ...refmodel.errors import InvalidArgument
from ...refmodel.gfp import GFP_INT, GFP_KERNEL, format_gfp
from ...refmodel.page_alloc import Expectation, Outcome
from ...refmodel.slab import OWNER, SLAB_DEBUG_FLAGS, LiveObject, format_slab_flags
from ._checker import Checker, Lazy, call_text, register_checker

if TYPE_CHECKING:
    from . import Lockstep

_ZERO = GFP_INT.ZERO
_ZONE_BITS = GFP_INT.DMA | GFP_INT.DMA32 | GFP_INT.HIGHMEM


class SlabLayer:
    """Object mechanics shared by the kmalloc and kmem_cache steps (one per driver: ``SlabLayer.of(driver)``)."""

    def __init__(self, driver: Lockstep) -> None:
        self.d = driver
        driver.on_page_block.append(self._page_block)
        #: Checks run on a new object and after a free (SLUB debugging adds its poison check here).
        self.on_place: list[Callable[[LiveObject, int | None, int, str | Lazy], None]] = []
        self.on_free: list[Callable[[LiveObject, str], None]] = []

    @classmethod
    def of(cls, driver: Lockstep) -> SlabLayer:
        layer = driver.__dict__.get("_slab_layer")
        if layer is None:
            layer = driver.__dict__["_slab_layer"] = cls(driver)
        return layer  # type: ignore[no-any-return]

    def _page_block(self, pfn: int, order: int) -> None:
        """SLAB-NO-OVERLAP: a block alloc_pages returned holds no live object."""
        if self.d.slab.objects:
            self.d.checked(lambda: self.d.slab.check_page_block(pfn, order))

    def call(self, e: Expectation | None, gfp: int | None, fn: Callable[[], Any]) -> tuple[Any, bool]:
        """One implementation call, then, where it shows its slabs, their pages into the page model."""
        d = self.d
        out = d.call(e, gfp, fn)
        if e is not None and e.outcome is Outcome.MUST_SUCCEED and e.rule_id == "SLAB-NO-SPURIOUS-FAIL" and d.binds(e.rule_id):
            d.coverage[e.rule_id] += 1
        if d.slab.exact:
            self.sync_slabs()
        return out

    def step(self, op: str, values: dict[str, Any], e: Expectation, fn: Callable[[], Any], *, gfp: int | None,
             args: dict[str, Any] | None = None, before: Callable[[], None] | None = None) -> tuple[Any, Any, bool]:
        """The driver's template with the slab layer's call: refuse, record, (before), call, judge, sync slabs."""
        return self.d.step(op, values, e, fn, gfp=gfp, args=args, before=before, via=self.call)

    def sync_slabs(self) -> None:
        """SLAB-INTROSPECT: the implementation's slabs() into the model, so page liveness stays exact."""
        d = self.d
        raw, _ = d.call(None, None, d.iut.slabs)
        try:
            rows = [(int(c), int(p), int(o), int(u), int(t)) for c, p, o, u, t in raw]
        except (TypeError, ValueError):
            raise d.fail("IUT-RETURN-TYPE", f"slabs() returned {type(raw).__name__}; it must return a list of (cache, pfn, order, inuse, total)") from None
        d.coverage["SLAB-INTROSPECT"] += 1
        d.checked(lambda: d.slab.sync_slabs(rows, len(d.trace) - 1))

    def place(self, what: str | Lazy, addr: int, size: int, gfp: int, *, align: int, align_rule: str, cid: int | None, write: bool = True) -> LiveObject:
        """Check a returned object, adopt it, zero-check it and give it a pattern."""
        d = self.d
        for rule in ("SLAB-LOWMEM", "SLAB-ZONE-ELIGIBLE", align_rule, "SLAB-NO-OVERLAP"):
            d.coverage[rule] += 1
        d.checked(lambda: d.slab.check_object(addr, size, gfp, align=align, align_rule=align_rule, what=what, cid=cid))
        obj = d.slab.adopt_object(addr, size, gfp, len(d.trace) - 1, cid=cid)
        for check in self.on_place:
            check(obj, cid, gfp, what)
        if d.check_memory:
            if gfp & _ZERO:
                d.contents.verify_object_zero(obj, what)
            if write:
                d.contents.write_object(obj)
        return obj

    def drop(self, addr: int) -> None:
        d = self.d
        d.slab.adopt_free(addr)
        d.contents.forget_object(addr)
        d.names.forget_object(addr)

    def free(self, op: str, cid: int | None, addr: int, fn: Callable[[], Any]) -> None:
        """kfree / kmem_cache_free: verify the object, free it, or check that a refused misuse left everything intact."""
        d = self.d
        e = d.slab.expect_kfree(addr, cid=cid)
        values: dict[str, Any] = {"addr": addr} if cid is None else {"cache": cid, "addr": addr}
        valid = e.report is None
        obj = d.slab.objects.get(addr) if valid else None
        _, result, _ = self.step(op, values, e, fn, gfp=None, before=(lambda: d.contents.verify_object(obj)) if obj is not None else None)
        d.none_result(result, op)
        if obj is not None:
            self.drop(addr)
            for check in self.on_free:
                check(obj, op)
        elif valid:
            d.coverage["KFREE-NULL"] += 1
        elif d.check_memory:
            d.contents.verify_all()

    def check_no_page_block(self, addr: int, size: int, what: str | Lazy) -> None:
        """SLAB-NO-OVERLAP: an object grown in place reaches no live page block."""
        d = self.d
        first, last = d.machine.virt_to_pfn(addr), d.machine.virt_to_pfn(addr + size - 1)
        if first is None or last is None:
            return
        for pfn in range(first, last + 1):
            blk = d.model.live_block_at(pfn)
            if blk is not None and blk.pfn not in d.slab.slab_blocks:
                raise d.fail("SLAB-NO-OVERLAP", f"{what}: the object now reaches the live order-{blk.order} page block at pfn {blk.pfn:#x}")


class SlabChecker(Checker):
    """kmem_cache_create, _alloc, _free, _destroy, _shrink; and free_pages of the slab layer's page blocks."""

    subsystem = "slab"
    steps = ("kmem_cache_create", "kmem_cache_alloc", "kmem_cache_free", "kmem_cache_destroy", "kmem_cache_shrink")
    owns_pages = (OWNER,)

    def __init__(self, driver: Lockstep) -> None:
        super().__init__(driver)
        self.layer = SlabLayer.of(driver)

    def kmem_cache_create(self, name: str, size: int, align: int, flags: int) -> int | None:
        """kmem_cache_create(name, size, align, flags): a cache id, or None."""
        d = self.d
        e = d.slab.expect_cache_create(size, align, flags, d.env.context)
        step, result, refused = self.layer.step("kmem_cache_create", {"name": name, "size": size, "align": align, "flags": flags}, e,
                                                lambda: d.iut.kmem_cache_create(name, size, align, flags), gfp=GFP_KERNEL)
        if refused or result is None:
            return None
        cid = d.int_result(result, "kmem_cache_create")
        if cid == 0:
            raise d.fail("IUT-RETURN-TYPE", f"kmem_cache_create({name!r}) returned cache id 0, which slabs() reserves for kmalloc's own caches")
        d.coverage["SLAB-CACHE-MERGE"] += 1  # a new id is always allowed; a live one must be a merge
        # A kernel without CONFIG_SLUB_DEBUG keeps none of the debug flags, so such caches merge.
        kept = flags if "slab_debug" in d.capabilities else flags & ~SLAB_DEBUG_FLAGS
        if cid in d.slab.caches:  # an alias: SLUB merged the request into a live cache
            d.checked(lambda: d.slab.check_alias(cid, size, align, kept, f"kmem_cache_create({name!r}, {size}, {align}, {format_slab_flags(flags)})"))
            d.slab.adopt_alias(cid, name, size, align, kept)
        else:
            d.slab.adopt_cache(cid, name, size, align, kept)
        step.result = d.names.bind_cache(cid)
        return cid

    def kmem_cache_alloc(self, cache: int, gfp: int) -> int | None:
        """kmem_cache_alloc(cache, gfp): an object of the cache's size and alignment, or None."""
        d = self.d
        c = d.slab.caches.get(cache)
        if c is None:
            raise InvalidArgument(f"kmem_cache_alloc on cache {cache}, which is not live, is undefined")
        e = d.slab.expect_cache_alloc(cache, gfp, d.env.context)
        policy = d.slab.exact and "SLAB-PARTIAL-FIRST" in d.claims
        before = {pfn: (c_, o, *d.slab.slab_usage[pfn]) for pfn, (c_, o) in d.slab.slab_blocks.items()} if policy else {}
        step, result, refused = self.layer.step("kmem_cache_alloc", {"cache": cache, "gfp": gfp}, e, lambda: d.iut.kmem_cache_alloc(cache, gfp), gfp=gfp)
        what = Lazy(lambda: f"kmem_cache_alloc({c.name}, {format_gfp(gfp)})")
        if refused or result is None or result == 0:
            if not refused:
                d.expect_null(e, what)
            return None
        addr = d.int_result(result, "kmem_cache_alloc")
        # new_slab keeps only the caller's reclaim flags: the zone is the cache's (s->allocflags), whatever gfp says.
        self.layer.place(what, addr, c.object_size, (gfp & ~_ZONE_BITS) | c.zone_gfp, align=c.align,
                         align_rule="SLAB-CACHE-ALIGN", cid=cache)
        step.result = d.names.bind_object(addr)
        if policy:
            d.coverage["SLAB-PARTIAL-FIRST"] += 1
            d.checked(lambda: d.slab.check_partial_first(cache, addr, before))
        return addr

    def kmem_cache_free(self, cache: int, addr: int) -> None:
        """kmem_cache_free(cache, p)."""
        self.layer.free("kmem_cache_free", cache, addr, lambda: self.d.iut.kmem_cache_free(cache, addr))

    def kmem_cache_destroy(self, cache: int) -> None:
        """kmem_cache_destroy(cache): a busy cache is reported and stays, with its objects."""
        d = self.d
        c = d.slab.caches.get(cache)
        if c is None:
            raise InvalidArgument(f"kmem_cache_destroy of cache {cache}, which is not live, is undefined")
        if not c.linked:
            raise InvalidArgument(f"kmem_cache_destroy of cache {cache}, whose last reference an earlier kmem_cache_destroy dropped "
                                  f"(it still had objects), is undefined")
        e = d.slab.expect_cache_destroy(cache, d.env.context)
        _, result, refused = self.layer.step("kmem_cache_destroy", {"cache": cache}, e, lambda: d.iut.kmem_cache_destroy(cache), gfp=GFP_KERNEL)
        d.none_result(result, "kmem_cache_destroy")
        if not refused:
            d.slab.adopt_destroy(cache)
        if cache in d.slab.caches and d.check_memory:
            d.contents.verify_objects()  # an alias, or a busy cache, stays with its objects

    def kmem_cache_shrink(self, cache: int) -> None:
        """kmem_cache_shrink(cache): give empty slabs back; sleeps."""
        d = self.d
        if cache not in d.slab.caches:
            raise InvalidArgument(f"kmem_cache_shrink of cache {cache}, which is not live, is undefined")
        e = d.slab.expect_cache_shrink(cache, d.env.context)
        self.layer.step("kmem_cache_shrink", {"cache": cache}, e, lambda: d.iut.kmem_cache_shrink(cache), gfp=GFP_KERNEL)
        if d.slab.exact and "SLAB-SHRINK-RELEASES" in d.claims:
            d.coverage["SLAB-SHRINK-RELEASES"] += 1
            d.checked(lambda: d.slab.check_shrunk(cache))
        if d.check_memory:
            d.contents.verify_objects()

    # -- page blocks the slab layer owns, given to free_pages --------------------------------------

    def free_owned_block(self, op: str, values: dict[str, Any], pfn: int, order: int, call: Callable[[], Any]) -> bool:
        """free_pages of a block the slab layer holds: a slab is a Bad page state; a large kmalloc block may be freed (SLAB-PAGE-BAD-FREE)."""
        d = self.d
        e = d.slab.expect_free_slab_block(pfn, order)
        if e is None:
            return False
        # The name of what the caller frees: the page block by its pfn, or the object whose address it gives.
        arg = {"pfn": d.names.pfn_ref(pfn)} if op == "free_pages" else {"addr": d.names.obj_ref(values["addr"])}
        large = d.slab.large_object_at(pfn)
        _, result, refused = self.layer.step(op, values, e, call, gfp=None, args={**arg, "order": order})
        d.none_result(result, op)
        shown = pfn in d.slab.slab_blocks
        d.coverage["SLAB-INTROSPECT"] += 1
        text = call_text(op, values)
        if refused or e.report is not None:
            if not shown:
                raise d.fail("SLAB-INTROSPECT", f"{text} was reported and refused, yet the block at pfn {pfn:#x} is gone from slabs()")
            if d.check_memory:
                d.contents.verify_objects()
            return True
        if large is None:
            return True
        if shown:
            raise d.fail("SLAB-INTROSPECT", f"{text} freed the large kmalloc block at pfn {pfn:#x} (nothing was reported), "
                                            "but slabs() still shows it: report the misuse and keep the block, or let the block go")
        self.layer.drop(large.addr)
        return True


register_checker(SlabChecker)
