"""The slab layer's rule sets: kmem_cache sequences, slab lifecycles, and slab pages given to free_pages.

``SlabRules`` (capability ``slab``) creates caches with alignment, DMA and
debug flags, allocates a few neighbours at once, frees, shrinks and destroys
(busy only where claimed), and frees into the wrong cache where claimed.
Caches are drawn from the model's live ones, or made when there are none, so
every rule acts on something that exists; a new cache is often a twin of a
live one, which SLUB may merge it into (SLAB-CACHE-MERGE). With the slabs shown
(``slab_info``), ``SlabLifecycleRules`` drives a cache through the states
the policy rules speak of, and ``SlabPageFreeRules`` gives free_pages a slab
page or a large kmalloc block (mm/slub.c, mm/slab_common.c).
"""

from __future__ import annotations

from typing import Any

from hypothesis import assume
from hypothesis import strategies as st
from hypothesis.stateful import precondition, rule

from ...refmodel.context import Context, in_atomic
from ...refmodel.gfp import GFP_ATOMIC, GFP_ZONEMASK
from ...refmodel.kmalloc import kmalloc_max_cache_size
from ...refmodel.slab import SLAB_NEVER_MERGE, Cache, SlabFlag
from .._subsystems import register_rule_set
from ..strategies.pages import ATOMIC_CONTEXTS
from ..strategies.slab import aligns, cache_sizes, slab_flags, twin_requests
from ._base import RuleSet, claims, rule_id
from .pages import fill_gfp, fillable

_ZONE_BITS = int(GFP_ZONEMASK)
_CACHE_MIGHT_SLEEP = rule_id("SLAB-CACHE-MIGHT-SLEEP")
_DESTROY_BUSY = rule_id("SLAB-DESTROY-BUSY")
_PAGE_BAD_FREE = rule_id("SLAB-PAGE-BAD-FREE")
_BUDDY_DOUBLE_FREE = rule_id("BUDDY-DOUBLE-FREE")
_SLAB_DOUBLE_FREE = rule_id("SLAB-DOUBLE-FREE")


def may_sleep_in_cache_ops(self: Any) -> bool:
    """A precondition: kmem_cache_create/destroy/shrink may be called (they sleep), or their splat is claimed."""
    return _CACHE_MIGHT_SLEEP in self.target.claims or not in_atomic(self.iut.env.context)


class CacheDraws(RuleSet):
    """Drawing a cache for the rules that need one (no rules of its own)."""

    def _cache(self, data: st.DataObject, *, debug: bool = False, need: SlabFlag | None = None) -> int:
        """A live cache, or a new one when there is none (or sometimes anyway); with ``debug``, one with red zones or
        poison; with ``need`` (SLAB_RED_ZONE or SLAB_POISON), one that keeps that debug area."""
        caches = self.iut.slab.caches
        debug = debug or need is not None

        def fits(c: Cache) -> bool:
            if need is SlabFlag.RED_ZONE:
                return c.red_zoned
            if need is SlabFlag.POISON:
                return c.poisoned
            return not debug or c.red_zoned or c.poisoned

        live = sorted(c for c in caches if fits(caches[c]))
        if live and data.draw(st.integers(0, 3), label="new cache?"):
            return data.draw(st.sampled_from(live), label="cache")
        assume(may_sleep_in_cache_ops(self))
        plain = sorted(c for c in caches if caches[c].plain_stride is not None and caches[c].linked)
        if plain and not debug and not data.draw(st.integers(0, 2), label="a twin of a live cache?"):
            size, align, flags = data.draw(twin_requests(caches[data.draw(st.sampled_from(plain), label="twin of")]), label="twin")
        else:
            size, align, flags = data.draw(cache_sizes(), label="size"), data.draw(aligns(), label="align"), data.draw(slab_flags(debug=debug), label="flags")
            flags |= int(need or 0)
        cid = self.iut.kmem_cache_create(f"kmemspec_test_{len(caches)}", size, align, flags)
        assume(cid is not None)
        return cid


class SlabRules(CacheDraws):
    """kmem_cache_create/alloc/free/destroy/shrink, and kmem_cache_free into the wrong cache where claimed."""

    @rule(data=st.data(), n=st.integers(1, 4), ask_ksize=st.booleans())
    def kmem_cache_alloc(self, data: st.DataObject, n: int, ask_ksize: bool) -> None:
        """A few objects at once: neighbours in one slab, where stride and alignment bugs show; then maybe ksize of the
        last, which for a red-zoned or poisoned cache is its object size, not its stride (mm/slab.h slab_ksize)."""
        cache = self._cache(data)
        gfp = self._gfp(data) & ~_ZONE_BITS
        addr = None
        for _ in range(n):
            addr = self.iut.kmem_cache_alloc(cache, gfp)
        if ask_ksize and addr is not None:
            self.iut.ksize(addr)

    @rule(data=st.data())
    def kmem_cache_free(self, data: st.DataObject) -> None:
        live = sorted(a for a, o in self.iut.slab.objects.items() if o.cache is not None)
        if not live:  # one made in the same step, so the rule is not lost to a failed assume
            made = self.iut.kmem_cache_alloc(self._cache(data), int(GFP_ATOMIC))
            live = [made] if made is not None else []
        assume(live)
        addr = data.draw(st.sampled_from(live), label="object")
        self.iut.kmem_cache_free(self.iut.slab.objects[addr].cache, addr)

    @precondition(may_sleep_in_cache_ops)
    @rule(data=st.data(), leak=st.booleans())
    def kmem_cache_destroy(self, data: st.DataObject, leak: bool) -> None:
        cache = self._cache(data)
        busy_ok = _DESTROY_BUSY in self.target.claims
        if leak and busy_ok:  # slub_kunit's test_leak_destroy: one object still allocated
            self.iut.kmem_cache_alloc(cache, self._gfp(data) & ~_ZONE_BITS)
        c = self.iut.slab.caches[cache]
        assume(c.linked and (not c.live or busy_ok or c.refcount > 1))  # an alias's destroy only drops a reference
        self.iut.kmem_cache_destroy(cache)

    @precondition(may_sleep_in_cache_ops)
    @rule(data=st.data())
    def kmem_cache_shrink(self, data: st.DataObject) -> None:
        self.iut.kmem_cache_shrink(self._cache(data))

    @precondition(may_sleep_in_cache_ops)
    @rule(data=st.data(), never=st.sampled_from([f for f in SlabFlag if f & SLAB_NEVER_MERGE]))
    def kmem_cache_create_unmergeable_twin(self, data: st.DataObject, never: SlabFlag) -> None:
        """A live plain cache's exact geometry with one SLAB_NEVER_MERGE flag more: find_mergeable must refuse it, so
        the request gets a cache of its own (mm/slab_common.c slab_unmergeable of the request)."""
        caches = self.iut.slab.caches
        plain = sorted(c for c in caches if caches[c].plain_stride is not None and caches[c].linked)
        if not plain:  # make one in the same step, so the rule is not left to luck
            flags = data.draw(st.sampled_from((0, int(SlabFlag.HWCACHE_ALIGN))), label="flags")
            self.iut.kmem_cache_create(f"kmemspec_test_{len(caches)}", data.draw(cache_sizes(), label="size"), data.draw(aligns(), label="align"), flags)
            plain = sorted(c for c in caches if caches[c].plain_stride is not None and caches[c].linked)
        assume(plain)
        twin = caches[data.draw(st.sampled_from(plain), label="twin of")]
        self.iut.kmem_cache_create(f"kmemspec_test_{len(caches)}", twin.object_size, twin.align, twin.flags | int(never))

    @precondition(claims("SLAB-CACHE-MIGHT-SLEEP"))
    @rule(data=st.data(), ctx=st.sampled_from(ATOMIC_CONTEXTS))
    def kmem_cache_create_in_atomic(self, data: st.DataObject, ctx: Context) -> None:
        """kmem_cache_create in atomic context (entered in the same step unless already there): it takes slab_mutex,
        so might_sleep splats (mm/slab_common.c __kmem_cache_create_args)."""
        before = self.iut.env.context
        if not in_atomic(before):
            self.iut.set_context(ctx)
        self.iut.kmem_cache_create(f"kmemspec_test_{len(self.iut.slab.caches)}", data.draw(cache_sizes(), label="size"),
                                   data.draw(aligns(), label="align"), data.draw(slab_flags(), label="flags"))
        if not in_atomic(before):
            self.iut.set_context(before)

    @precondition(claims("SLAB-WRONG-CACHE"))
    @rule(data=st.data())
    def kmem_cache_free_wrong_cache(self, data: st.DataObject) -> None:
        """kmem_cache_free of a live object (a kmalloc one too) into a cache it is not from."""
        objs = self.iut.slab.objects
        addr = self._object(data)
        own = objs[addr].cache
        others = sorted(c for c in self.iut.slab.caches if c != own)
        # A cache the object is not from, drawn rather than hoped for: a failed assume would end the whole example.
        cache = data.draw(st.sampled_from(others), label="wrong cache") if others else self._cache(data)
        assume(cache != own)
        self.iut.kmem_cache_free(cache, addr)


class SlabLifecycleRules(CacheDraws):
    """A cache filled into two slabs, one emptied, refilled, maybe shrunk: where SLAB-PARTIAL-FIRST and SLAB-SHRINK-RELEASES bind."""

    @precondition(claims("SLAB-PARTIAL-FIRST", "SLAB-SHRINK-RELEASES"))
    @precondition(may_sleep_in_cache_ops)
    @rule(data=st.data(), shrink=st.booleans())
    def slab_lifecycle(self, data: st.DataObject, shrink: bool) -> None:
        """Fill a cache into two slabs, empty one of them, allocate again, maybe shrink: the policy rules' states."""
        cache = self._cache(data)
        gfp = self._gfp(data) & ~_ZONE_BITS
        slab = self.iut.slab
        for _ in range(128):
            if len({p for p, (c, _) in slab.slab_blocks.items() if c == cache}) >= 2:
                break
            if self.iut.kmem_cache_alloc(cache, gfp) is None:
                break
        mine = sorted(p for p, (c, _) in slab.slab_blocks.items() if c == cache)
        assume(mine)
        victim = data.draw(st.sampled_from(mine), label="slab")
        for addr in sorted(a for a, o in slab.objects.items() if o.cache == cache and slab.slab_of(a) == victim):
            self.iut.kmem_cache_free(cache, addr)
        self.iut.kmem_cache_alloc(cache, gfp)
        if shrink:
            self.iut.kmem_cache_shrink(cache)


class SlabPageFreeRules(RuleSet):
    """Page blocks of the slab layer (slab pages, large kmalloc blocks) given to free_pages, and kfree around that."""

    @precondition(claims("SLAB-PAGE-BAD-FREE"))
    @rule(data=st.data())
    def free_pages_of_slab_page(self, data: st.DataObject) -> None:
        """A slab page given to free_pages: a Bad page state, reported, the slab kept (one is made in the same step if none is live)."""
        slab = self.iut.slab
        blocks = sorted(p for p in slab.slab_blocks if slab.large_object_at(p) is None)
        if not blocks:
            size = data.draw(st.integers(1, kmalloc_max_cache_size(self.target.machine)), label="small kmalloc size")
            if self.iut.kmalloc(size, self._gfp(data)) is None:  # an allowed NULL ends the rule, not the example
                return
            blocks = sorted(p for p in slab.slab_blocks if slab.large_object_at(p) is None)
            if not blocks:
                return
        pfn = data.draw(st.sampled_from(blocks), label="slab block")
        self.iut.free_pages(pfn, slab.slab_blocks[pfn][1])

    @rule(data=st.data())
    def free_pages_of_large_kmalloc(self, data: st.DataObject) -> None:
        """A large kmalloc block given to free_pages (freed, or reported where claimed), then maybe kfree of it (a double
        free); or, where page double frees are claimed, kfree of it first, then free_pages. One is made in the same step
        if none is live."""
        slab = self.iut.slab
        claimed = self.target.claims
        then = data.draw(st.sampled_from(("", "kfree", "kfree first") if _BUDDY_DOUBLE_FREE in claimed else ("", "kfree")), label="then")
        blocks = sorted(p for p in slab.slab_blocks if slab.large_object_at(p) is not None)
        if not blocks or data.draw(st.booleans(), label="a new large kmalloc?"):
            max_cache = kmalloc_max_cache_size(self.target.machine)
            addr = self.iut.kmalloc(data.draw(st.integers(max_cache + 1, 4 * max_cache), label="size"), self._gfp(data))
            if addr is None:  # an allowed NULL: no block to free this time
                return
            blocks = [self.target.machine.virt_to_pfn(addr)]
        pfn = data.draw(st.sampled_from(blocks), label="slab block")
        large = slab.large_object_at(pfn)
        if large is None:  # the new object came from a slab after all (kmalloc's limits are the machine's)
            return
        order = slab.slab_blocks[pfn][1]
        if then == "kfree first":
            self.iut.kfree(large.addr)
            if pfn in slab.slab_blocks and _PAGE_BAD_FREE not in claimed:
                return  # the block stayed as an empty slab: freeing it is a misuse this implementation does not claim
            self.iut.free_pages(pfn, order)
            return
        self.iut.free_pages(pfn, order)
        if then == "kfree" and large.addr not in slab.objects and _SLAB_DOUBLE_FREE in claimed:
            self.iut.kfree(large.addr)


class SlabFallbackRules(RuleSet):
    """kmalloc when a single free page is all that is left: a new slab must come from the slab's smallest order."""

    @precondition(claims("SLAB-NO-SPURIOUS-FAIL"))
    @precondition(fillable)
    @rule(size=st.sampled_from((1024, 2048, 4096)), data=st.data())
    def kmalloc_with_one_free_page(self, size: int, data: st.DataObject) -> None:
        """Exhaust the zones, give back one page, then kmalloc until a new slab is needed: allocate_slab falls back from
        the preferred order (oo) to the smallest that holds one object (s->min: order 0 here) with the caller's flags."""
        gfp = fill_gfp(self, int(GFP_ATOMIC))
        taken = self.iut.fill(gfp, 0)
        live = self.iut.model.live
        bigger = [p for p in taken if p in live and live[p].order > 0]
        assume(bigger)
        pfn = data.draw(st.sampled_from(bigger), label="block to give back")
        order = live[pfn].order
        self.iut.free_pages(pfn, order)
        for _ in range((1 << order) - 1):  # all but one page of it taken again: one free page, no bigger block
            self.iut.alloc_pages(gfp, 0)
        for _ in range(8 * 4096 // size + 1):
            if self.iut.kmalloc(size, gfp) is None:
                break


register_rule_set("slab", SlabRules)
register_rule_set({"slab", "slab_info"}, SlabLifecycleRules)
register_rule_set({"kmalloc", "slab_info"}, SlabPageFreeRules)
register_rule_set({"kmalloc", "slab_info"}, SlabFallbackRules)
