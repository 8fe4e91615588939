"""kmalloc's rule sets: objects of every size class, krealloc chains, ksize, kfree, and their misuse where claimed.

``KmallocRules`` (capability ``kmalloc``) draws sizes at the bucket edges,
large kmalloc and past KMALLOC_MAX_SIZE, kzalloc of sizes freed before (their
slots come back dirty unless zeroed), kmalloc_array products that wrap, and
krealloc chains; misuse where claimed: double free and interior pointers.
kmalloc with __GFP_HIGHMEM or __GFP_DMA32 is always generated: the kernel
fixes the flags and goes on, so its outcome is defined. ``KfreePageBlockRules``
(``kmalloc`` and ``get_free_pages``) gives kfree a __get_free_pages block.
Objects are drawn from the model's live ones rather than from bundles, so
every rule acts on something that exists (mm/slab_common.c, mm/slub.c).
"""

from __future__ import annotations

from typing import Any

from hypothesis import assume
from hypothesis import strategies as st
from hypothesis.stateful import precondition, rule

from ...refmodel.context import Context
from ...refmodel.gfp import GFP, GFP_KERNEL, GFP_ZONEMASK
from ...refmodel.kmalloc import ZERO_SIZE_PTR, kmalloc_max_cache_size, kmalloc_max_size, kmalloc_size_roundup
from .._subsystems import register_rule_set
from ..strategies.kmalloc import kmalloc_sizes
from ..strategies.pages import ATOMIC_CONTEXTS
from ._base import RuleSet, claims


class KmallocRules(RuleSet):
    """kmalloc, kzalloc, kmalloc_array, krealloc, ksize and kfree, interleaved with the page rules."""

    def __init__(self) -> None:
        super().__init__()
        self.freed_sizes: list[int] = []

    def _sizes(self) -> st.SearchStrategy[int]:
        m = self.target.machine
        return kmalloc_sizes(kmalloc_max_cache_size(m), kmalloc_max_size(m))

    @rule(data=st.data(), ask_ksize=st.booleans())
    def kmalloc(self, data: st.DataObject, ask_ksize: bool) -> None:
        addr = self.iut.kmalloc(data.draw(self._sizes(), label="size"), self._gfp(data))
        if ask_ksize and addr is not None and addr > ZERO_SIZE_PTR:
            self.iut.ksize(addr)

    @rule(data=st.data(), zone=st.sampled_from((GFP.DMA, GFP.DMA32, GFP.HIGHMEM)))
    def kmalloc_zone_modifier(self, data: st.DataObject, zone: GFP) -> None:
        """Two kmallocs of one size with a zone modifier, the second from the slab the first used: __GFP_DMA picks the
        kmalloc-dma caches; __GFP_DMA32 and __GFP_HIGHMEM are a caller's bug that kmalloc_fix_flags reports and strips
        where a new slab or a large kmalloc needs pages (include/linux/slab.h kmalloc_type, mm/slab_common.c
        kmalloc_fix_flags, mm/slub.c new_slab)."""
        size = data.draw(self._sizes(), label="size")
        gfp = (self._gfp(data) & ~int(GFP_ZONEMASK)) | int(zone)
        for _ in range(2):
            self.iut.kmalloc(size, gfp)

    @rule(data=st.data())
    def kzalloc(self, data: st.DataObject) -> None:
        # Sizes of objects freed before: their slots come back, dirty, unless zeroed.
        sizes = self._sizes() if not self.freed_sizes else st.one_of(st.sampled_from(self.freed_sizes), self._sizes())
        self.iut.kzalloc(data.draw(sizes, label="size"), self._gfp(data))

    @rule(data=st.data(), n=st.integers(0, 64), size=st.integers(0, 256),
          wrap=st.one_of(st.none(), st.tuples(st.integers(2, 16), st.integers(1, 64))))
    def kmalloc_array(self, data: st.DataObject, n: int, size: int, wrap: tuple[int, int] | None) -> None:
        if wrap is not None:  # n * size just past 2^BITS_PER_LONG: wraps to a small number unless checked
            n, size = wrap[0], -(-(1 << self.target.machine.word_bits) // wrap[0]) + wrap[1]
        self.iut.kmalloc_array(n, size, self._gfp(data))

    @rule(data=st.data())
    def grow_or_shrink(self, data: st.DataObject) -> None:
        addr = self._object(data)  # a kmem_cache object too: krealloc moves it to kmalloc when it outgrows ksize
        old = self.iut.slab.objects[addr].size
        size = data.draw(st.one_of(st.integers(0, 2 * max(old, 8)), self._sizes()), label="size")
        self.iut.krealloc(addr, size, self._gfp(data))

    @precondition(claims("CTX-MIGHT-SLEEP"))
    @rule(data=st.data(), ctx=st.sampled_from(ATOMIC_CONTEXTS))
    def krealloc_moves_in_atomic(self, data: st.DataObject, ctx: Context) -> None:
        """A blocking krealloc that outgrows its object in atomic context: the move is a kmalloc, so might_sleep splats."""
        addr = self._object(data)
        m = self.target.machine
        size = min(2 * max(kmalloc_size_roundup(self.iut.slab.objects[addr].size, m), 8), kmalloc_max_size(m))
        before = self.iut.env.context
        self.iut.set_context(ctx)
        self.iut.krealloc(addr, size, int(GFP_KERNEL))
        self.iut.set_context(before)

    @rule(data=st.data())
    def ksize(self, data: st.DataObject) -> None:
        self.iut.ksize(self._object(data))

    @rule(data=st.data(), reuse=st.booleans())
    def kfree(self, data: st.DataObject, reuse: bool) -> None:
        addr = self._object(data)  # kfree takes kmem_cache_alloc objects too (KFREE-ANY-SLAB-OBJ)
        obj = self.iut.slab.objects[addr]
        self.freed_sizes.append(obj.size)
        self.iut.kfree(addr)
        if reuse and obj.cache is None:  # the slot just freed comes straight back: dirty unless zeroed
            self.iut.kzalloc(obj.size, self._gfp(data))

    @rule(addr=st.sampled_from((0, ZERO_SIZE_PTR)))
    def kfree_null(self, addr: int) -> None:
        self.iut.kfree(addr)
        self.iut.ksize(addr)

    # -- misuse, where claimed -----------------------------------------------------------------

    @precondition(claims("SLAB-DOUBLE-FREE"))
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

    @precondition(claims("SLAB-INVALID-FREE"))
    @rule(data=st.data())
    def kfree_interior(self, data: st.DataObject) -> None:
        obj = self.iut.slab.objects[self._object(data)]
        assume(obj.size > 1)
        self.iut.kfree(obj.addr + data.draw(st.integers(1, obj.size - 1), label="offset"))


class KfreePageBlockRules(RuleSet):
    """kfree of a __get_free_pages block, which is not a slab object: InvalidFree where claimed."""

    @precondition(claims("SLAB-INVALID-FREE"))
    @rule(block=RuleSet.addrs)
    def kfree_page_block(self, block: Any) -> None:
        assume(self.iut.model.live_block_at(self.iut.machine.virt_to_pfn(block.start)) is not None)
        self.iut.kfree(block.start)


register_rule_set("kmalloc", KmallocRules)
register_rule_set({"kmalloc", "get_free_pages"}, KfreePageBlockRules)
