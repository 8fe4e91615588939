"""The memory state machine: the page rules plus kmalloc and kmem_cache sequences, interleaved.

Implementations with the ``kmalloc`` and ``slab`` capabilities get objects
of every size class (bucket edges, large kmalloc, past KMALLOC_MAX_SIZE),
krealloc chains, ksize, caches with alignment and DMA flags, and misuse
where claimed: double free, interior pointers, page blocks given to kfree,
the wrong cache, destroying a busy cache, cache operations in atomic
context. kmalloc with __GFP_HIGHMEM or __GFP_DMA32 is always generated: the
kernel fixes the flags and goes on, so its outcome is defined.

Objects and caches are drawn from the model's live ones rather than from
bundles, so every rule acts on something that exists: a rule that needs a
cache makes one when there is none.
"""

from __future__ import annotations

from typing import Any, Callable

from hypothesis import assume
from hypothesis import strategies as st
from hypothesis.stateful import precondition, rule

from ..refmodel.context import in_atomic
from ..refmodel.gfp import GFP_ZONEMASK
from ..refmodel.kmalloc import ZERO_SIZE_PTR, kmalloc_max_cache_size, kmalloc_max_size
from .page_machine import PageStateMachine
from .strategies import aligns, cache_sizes, gfp_masks, kmalloc_sizes, slab_flags

_ZONE_BITS = int(GFP_ZONEMASK)


def _has(capability: str) -> Callable[[Any], bool]:
    return lambda self: capability in self.target.capabilities


def _claims(rule_id: str, capability: str = "kmalloc") -> Callable[[Any], bool]:
    return lambda self: capability in self.target.capabilities and rule_id in self.target.claims


def _can_block(self: Any) -> bool:
    return "CTX-MIGHT-SLEEP" in self.target.claims or not in_atomic(self.iut.env.context)


def _may_sleep_in_cache_ops(self: Any) -> bool:
    return "SLAB-CACHE-MIGHT-SLEEP" in self.target.claims or not in_atomic(self.iut.env.context)


class MemoryStateMachine(PageStateMachine):
    """Pages, kmalloc and the slab layer in one sequence. Subclass with ``for_target``."""

    def __init__(self) -> None:
        super().__init__()
        self.freed_sizes: list[int] = []

    # -- drawing from the model's state -------------------------------------------------------

    def _sizes(self) -> st.SearchStrategy[int]:
        m = self.target.machine
        return kmalloc_sizes(kmalloc_max_cache_size(m), kmalloc_max_size(m))

    def _object(self, data: st.DataObject, *, kmalloc_only: bool = False, cache: int | None = None) -> int:
        objs = self.iut.slab.objects
        live = sorted(a for a, o in objs.items() if (not kmalloc_only or o.cache is None) and (cache is None or o.cache == cache))
        assume(live)
        return data.draw(st.sampled_from(live), label="object")

    def _cache(self, data: st.DataObject, *, debug: bool = False) -> int:
        """A live cache, or a new one when there is none (or sometimes anyway); with ``debug``, one with red zones or poison."""
        caches = self.iut.slab.caches
        live = sorted(c for c in caches if not debug or caches[c].red_zoned or caches[c].poisoned)
        if live and data.draw(st.integers(0, 3), label="new cache?"):
            return data.draw(st.sampled_from(live), label="cache")
        assume(_may_sleep_in_cache_ops(self))
        cid = self.iut.kmem_cache_create(f"kmemspec_test_{len(self.iut.slab.caches)}", data.draw(cache_sizes(), label="size"),
                                         data.draw(aligns(), label="align"), data.draw(slab_flags(debug=debug), label="flags"))
        assume(cid is not None)
        return cid

    def _gfp(self, data: st.DataObject) -> int:
        blocking = _can_block(self) and data.draw(st.booleans(), label="blocking")
        return data.draw(gfp_masks(blocking=blocking), label="gfp")

    # -- kmalloc family ----------------------------------------------------------------------

    @precondition(_has("kmalloc"))
    @rule(data=st.data(), ask_ksize=st.booleans())
    def kmalloc(self, data: st.DataObject, ask_ksize: bool) -> None:
        addr = self.iut.kmalloc(data.draw(self._sizes(), label="size"), self._gfp(data))
        if ask_ksize and addr is not None and addr > ZERO_SIZE_PTR:
            self.iut.ksize(addr)

    @precondition(_has("kmalloc"))
    @rule(data=st.data())
    def kzalloc(self, data: st.DataObject) -> None:
        # Sizes of objects freed before: their slots come back, dirty, unless zeroed.
        sizes = self._sizes() if not self.freed_sizes else st.one_of(st.sampled_from(self.freed_sizes), self._sizes())
        self.iut.kzalloc(data.draw(sizes, label="size"), self._gfp(data))

    @precondition(_has("kmalloc"))
    @rule(data=st.data(), n=st.integers(0, 64), size=st.integers(0, 256),
          wrap=st.one_of(st.none(), st.tuples(st.integers(2, 16), st.integers(1, 64))))
    def kmalloc_array(self, data: st.DataObject, n: int, size: int, wrap: tuple[int, int] | None) -> None:
        if wrap is not None:  # n * size just past 2^BITS_PER_LONG: wraps to a small number unless checked
            n, size = wrap[0], -(-(1 << self.target.machine.word_bits) // wrap[0]) + wrap[1]
        self.iut.kmalloc_array(n, size, self._gfp(data))

    @precondition(_has("kmalloc"))
    @rule(data=st.data())
    def grow_or_shrink(self, data: st.DataObject) -> None:
        addr = self._object(data, kmalloc_only=True)
        old = self.iut.slab.objects[addr].size
        size = data.draw(st.one_of(st.integers(0, 2 * max(old, 8)), self._sizes()), label="size")
        self.iut.krealloc(addr, size, self._gfp(data))

    @precondition(_has("kmalloc"))
    @rule(data=st.data())
    def ksize(self, data: st.DataObject) -> None:
        self.iut.ksize(self._object(data))

    @precondition(_has("kmalloc"))
    @rule(data=st.data(), reuse=st.booleans())
    def kfree(self, data: st.DataObject, reuse: bool) -> None:
        addr = self._object(data)  # kfree takes kmem_cache_alloc objects too (KFREE-ANY-SLAB-OBJ)
        obj = self.iut.slab.objects[addr]
        self.freed_sizes.append(obj.size)
        self.iut.kfree(addr)
        if reuse and obj.cache is None:  # the slot just freed comes straight back: dirty unless zeroed
            self.iut.kzalloc(obj.size, self._gfp(data))

    @precondition(_has("kmalloc"))
    @rule(addr=st.sampled_from((0, ZERO_SIZE_PTR)))
    def kfree_null(self, addr: int) -> None:
        self.iut.kfree(addr)
        self.iut.ksize(addr)

    # -- kmem_cache -------------------------------------------------------------------------

    @precondition(_has("slab"))
    @rule(data=st.data(), n=st.integers(1, 4))
    def kmem_cache_alloc(self, data: st.DataObject, n: int) -> None:
        """A few objects at once: neighbours in one slab, where stride and alignment bugs show."""
        cache = self._cache(data)
        gfp = self._gfp(data) & ~_ZONE_BITS
        for _ in range(n):
            self.iut.kmem_cache_alloc(cache, gfp)

    @precondition(_has("slab"))
    @rule(data=st.data())
    def kmem_cache_free(self, data: st.DataObject) -> None:
        live = sorted(a for a, o in self.iut.slab.objects.items() if o.cache is not None)
        assume(live)
        addr = data.draw(st.sampled_from(live), label="object")
        self.iut.kmem_cache_free(self.iut.slab.objects[addr].cache, addr)

    @precondition(lambda self: "slab" in self.target.capabilities and _may_sleep_in_cache_ops(self))
    @rule(data=st.data(), leak=st.booleans())
    def kmem_cache_destroy(self, data: st.DataObject, leak: bool) -> None:
        cache = self._cache(data)
        busy_ok = "SLAB-DESTROY-BUSY" in self.target.claims
        if leak and busy_ok:  # slub_kunit's test_leak_destroy: one object still allocated
            self.iut.kmem_cache_alloc(cache, self._gfp(data) & ~_ZONE_BITS)
        assume(not self.iut.slab.caches[cache].live or busy_ok)
        self.iut.kmem_cache_destroy(cache)

    @precondition(lambda self: "slab" in self.target.capabilities and _may_sleep_in_cache_ops(self))
    @rule(data=st.data())
    def kmem_cache_shrink(self, data: st.DataObject) -> None:
        self.iut.kmem_cache_shrink(self._cache(data))

    @precondition(lambda self: {"slab", "slab_info"} <= self.target.capabilities
                  and bool({"SLAB-PARTIAL-FIRST", "SLAB-SHRINK-RELEASES"} & self.target.claims) and _may_sleep_in_cache_ops(self))
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

    # -- SLUB debugging: poison and red zones (capability slab_debug) ----------------------------

    @precondition(lambda self: "slab_debug" in self.target.capabilities and not in_atomic(self.iut.env.context))
    @rule(data=st.data())
    def kmem_cache_validate(self, data: st.DataObject) -> None:
        """An intact cache validates without a report."""
        self.iut.kmem_cache_validate(self._cache(data))

    @precondition(lambda self: {"slab_debug", "slab_info", "memory"} <= self.target.capabilities
                  and bool({"SLAB-POISON-CHECK", "SLAB-REDZONE-CHECK"} & self.target.claims) and not in_atomic(self.iut.env.context))
    @rule(data=st.data(), free_first=st.booleans())
    def clobber_and_validate(self, data: st.DataObject, free_first: bool) -> None:
        """slub_kunit's clobber tests: overwrite a poison or red zone byte; validate reports and restores it; validate again is clean."""
        cache = self._cache(data, debug=True)
        addr = self.iut.kmem_cache_alloc(cache, self._gfp(data) & ~_ZONE_BITS)
        if addr is not None and free_first:
            self.iut.kmem_cache_free(cache, addr)
        sites = self.iut.slab.clobber_sites(cache, self.target.claims)
        assume(sites)
        self.iut.clobber(data.draw(st.sampled_from(sites), label="byte"))
        self.iut.kmem_cache_validate(cache)
        self.iut.kmem_cache_validate(cache)

    # -- page blocks of the slab layer given to free_pages -----------------------------------------

    @precondition(lambda self: {"kmalloc", "slab_info"} <= self.target.capabilities)
    @rule(data=st.data(), then=st.sampled_from(("", "kfree", "kfree first")))
    def free_pages_of_slab_block(self, data: st.DataObject, then: str) -> None:
        """A slab page given to free_pages (a Bad page state, where claimed), or a large kmalloc block (freed or reported),
        then maybe kfree of it (a double free); or kfree of a large block, then free_pages of it (a page double free)."""
        slab = self.iut.slab
        claims = self.target.claims
        if data.draw(st.booleans(), label="a slab page?") and "SLAB-PAGE-BAD-FREE" in claims:
            blocks = sorted(p for p in slab.slab_blocks if slab.large_object_at(p) is None)
        else:
            blocks = sorted(p for p in slab.slab_blocks if slab.large_object_at(p) is not None)
            if not blocks or data.draw(st.booleans(), label="a new large kmalloc?"):
                max_cache = kmalloc_max_cache_size(self.target.machine)
                addr = self.iut.kmalloc(data.draw(st.integers(max_cache + 1, 4 * max_cache), label="size"), self._gfp(data))
                assume(addr is not None and slab.large_object_at(self.target.machine.virt_to_pfn(addr)) is not None)
                blocks = [self.target.machine.virt_to_pfn(addr)]
        assume(blocks)
        pfn = data.draw(st.sampled_from(blocks), label="slab block")
        order = slab.slab_blocks[pfn][1]
        large = slab.large_object_at(pfn)
        if then == "kfree first":
            assume(large is not None and "BUDDY-DOUBLE-FREE" in claims)
            self.iut.kfree(large.addr)
            if pfn in slab.slab_blocks and "SLAB-PAGE-BAD-FREE" not in claims:
                return  # the block stayed as an empty slab: freeing it is a misuse this implementation does not claim
            self.iut.free_pages(pfn, order)
            return
        self.iut.free_pages(pfn, order)
        if then == "kfree" and large is not None and large.addr not in slab.objects and "SLAB-DOUBLE-FREE" in claims:
            self.iut.kfree(large.addr)

    # -- misuse, where claimed -----------------------------------------------------------------

    @precondition(lambda self: _has("kmalloc")(self) and ("SLAB-DOUBLE-FREE" in self.target.claims))
    @rule(data=st.data(), via_cache=st.booleans())
    def free_twice(self, data: st.DataObject, via_cache: bool) -> None:
        addr = self._object(data)
        cache = self.iut.slab.objects[addr].cache
        if via_cache and cache is not None and "slab" in self.target.capabilities:
            self.iut.kmem_cache_free(cache, addr)
            self.iut.kmem_cache_free(cache, addr)
        else:
            self.iut.kfree(addr)
            self.iut.kfree(addr)

    @precondition(_claims("SLAB-INVALID-FREE"))
    @rule(data=st.data())
    def kfree_interior(self, data: st.DataObject) -> None:
        obj = self.iut.slab.objects[self._object(data)]
        assume(obj.size > 1)
        self.iut.kfree(obj.addr + data.draw(st.integers(1, obj.size - 1), label="offset"))

    @precondition(lambda self: "SLAB-INVALID-FREE" in self.target.claims and "get_free_pages" in self.target.capabilities
                  and "kmalloc" in self.target.capabilities)
    @rule(block=PageStateMachine.addrs)
    def kfree_page_block(self, block: Any) -> None:
        assume(self.iut.model.live_block_at(self.iut.machine.virt_to_pfn(block.start)) is not None)
        self.iut.kfree(block.start)

    @precondition(_claims("SLAB-WRONG-CACHE", "slab"))
    @rule(data=st.data())
    def kmem_cache_free_wrong_cache(self, data: st.DataObject) -> None:
        addr = self._object(data)
        cache = self._cache(data)
        assume(self.iut.slab.objects.get(addr) is not None and self.iut.slab.objects[addr].cache != cache)
        self.iut.kmem_cache_free(cache, addr)
