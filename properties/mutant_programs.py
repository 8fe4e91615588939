"""The shortest program written by hand that shows each bundled mutant's bug, in the printed counterexample's form.

A printed counterexample is measured against these (``kmemspec mutants``:
``printed_lines`` over ``shortest_lines``); tests/test_mutants.py runs every
program on its mutant, where it must fail by the mutant's rule (or one the
same slip breaks, ``Mutant.also``), and on ``fast``, where it must conform.
Each runs on its mutant's machine; pfn literals are that machine's.
"""

from __future__ import annotations

from typing import Final

from ..harness.impls.mutants import MUTANTS
from ..harness.lockstep import Lockstep
from ..harness.loader import load_impl
from ..refmodel import gfp as _gfp
from ..refmodel.context import Context
from ..refmodel.errors import ConformanceFailure
from ..refmodel.slab import SlabFlag

__all__ = ["SHORTEST", "run_program"]

_FILL_ATOMIC = "fill_0 = iut.fill(gfp=GFP_ATOMIC, order=0)"
_FILL_NOWAIT = "fill_0 = iut.fill(gfp=GFP_NOWAIT, order=0)"
_LAST_PAGE_SLAB = (_FILL_ATOMIC, "iut.free_pages(pfn=fill_0[0], order=4)",
                   "pfns_0 = [iut.alloc_pages(gfp=GFP_ATOMIC, order=0) for _ in range(15)]", "iut.kmalloc(size=1024, gfp=GFP_ATOMIC)")
_RED_ZONE_CACHE = ("cache_0 = iut.kmem_cache_create(name='t', size=1, align=0, flags=SlabFlag.RED_ZONE)",
                   "obj_0 = iut.kmem_cache_alloc(cache=cache_0, gfp=GFP_ATOMIC)")
_POISON_CACHE = ("cache_0 = iut.kmem_cache_create(name='t', size=8, align=0, flags=SlabFlag.POISON)",
                 "obj_0 = iut.kmem_cache_alloc(cache=cache_0, gfp=GFP_ATOMIC)", "iut.kmem_cache_free(cache=cache_0, addr=obj_0)")

#: mutant -> the lines of the shortest program that shows its bug.
SHORTEST: Final[dict[str, tuple[str, ...]]] = {
    "array-overflow-wraps": ("iut.kmalloc_array(n=2, size=2**63 + 1, gfp=GFP_ATOMIC)",),
    "bad-free-ignored": ("iut.free_pages(pfn=0x0, order=0)",),
    "boot-keeps-holes": (_FILL_ATOMIC,),
    "boot-keeps-reserved": (_FILL_ATOMIC,),
    "boot-misaligned": (_FILL_NOWAIT,),
    "bucket-too-small": ("obj_0 = iut.kmalloc(size=17, gfp=GFP_ATOMIC)", "iut.ksize(addr=obj_0)"),
    "cache-create-no-might-sleep": ("iut.set_context(ctx=Context.ATOMIC)", "iut.kmem_cache_create(name='t', size=1, align=0, flags=0)"),
    "cross-zone-merge": ("fill_0 = iut.fill(gfp=GFP_ATOMIC|__GFP_MEMALLOC, order=0)", "iut.free_pages(pfn=fill_0[26], order=2)",
                         "iut.free_pages(pfn=fill_0[25], order=2)", "iut.alloc_pages(gfp=GFP_ATOMIC|__GFP_MEMALLOC, order=3)"),
    "destroy-busy-frees": ("cache_0 = iut.kmem_cache_create(name='t', size=1, align=0, flags=0)",
                           "iut.kmem_cache_alloc(cache=cache_0, gfp=GFP_ATOMIC)", "iut.kmem_cache_destroy(cache=cache_0)"),
    "dma-cache-ignored": ("iut.kmalloc(size=1, gfp=GFP_ATOMIC|__GFP_DMA)",),
    "double-free-unchecked": ("pfn_0 = iut.alloc_pages(gfp=GFP_ATOMIC, order=0)", "iut.free_pages(pfn=pfn_0, order=0)",
                              "iut.free_pages(pfn=pfn_0, order=0)"),
    "emptiest-first": ("cache_0 = iut.kmem_cache_create(name='t', size=667, align=8, flags=0)",
                       "objs_0 = [iut.kmem_cache_alloc(cache=cache_0, gfp=GFP_ATOMIC) for _ in range(13)]",
                       "for addr in objs_0[0:12]: iut.kmem_cache_free(cache=cache_0, addr=addr)",
                       "iut.kmem_cache_alloc(cache=cache_0, gfp=GFP_ATOMIC)"),
    "free-addr-bad-ignored": ("iut.free_pages_addr(addr=0xbffff000, order=0)",),
    "free-addr-null-unchecked": ("iut.free_pages_addr(addr=0x0, order=0)",),
    "free-area-skips-max": ("iut.check_free_area()",),
    "free-order-trusted": ("pfn_0 = iut.alloc_pages(gfp=GFP_ATOMIC|__GFP_COMP, order=1)", "iut.free_pages(pfn=pfn_0, order=0)"),
    "free-pointer-in-neighbour": ("cache_0 = iut.kmem_cache_create(name='t', size=64, align=0, flags=0)",
                                  "objs_0 = [iut.kmem_cache_alloc(cache=cache_0, gfp=GFP_ATOMIC) for _ in range(3)]",
                                  "iut.kmem_cache_free(cache=cache_0, addr=objs_0[0])"),
    "free-pointer-in-poison": _POISON_CACHE,
    "getfree-keeps-highmem": ("iut.get_free_pages(gfp=GFP_HIGHUSER, order=0)",),
    "gfp-bug-only-on-new-slab": ("iut.kmalloc(size=1637, gfp=GFP_ATOMIC|__GFP_HIGHMEM)",),
    "hwcache-align-ignored": ("cache_0 = iut.kmem_cache_create(name='t', size=20, align=0, flags=SlabFlag.HWCACHE_ALIGN)",
                              "iut.kmem_cache_alloc(cache=cache_0, gfp=GFP_ATOMIC)", "iut.kmem_cache_alloc(cache=cache_0, gfp=GFP_ATOMIC)"),
    "interior-free-accepted": ("obj_0 = iut.kmalloc(size=2, gfp=GFP_ATOMIC)", "iut.kfree(addr=obj_0 + 1)"),
    "interior-free-ignored": ("pfn_0 = iut.alloc_pages(gfp=GFP_ATOMIC, order=1)", "iut.free_pages(pfn=pfn_0 + 1, order=0)"),
    "krealloc-move-no-might-sleep": ("obj_0 = iut.kmalloc(size=1, gfp=GFP_ATOMIC)", "iut.set_context(ctx=Context.ATOMIC)",
                                     "iut.krealloc(addr=obj_0, size=16, gfp=GFP_KERNEL)"),
    "krealloc-no-copy": ("obj_0 = iut.kmalloc(size=1, gfp=GFP_ATOMIC)", "iut.krealloc(addr=obj_0, size=16, gfp=GFP_ATOMIC)"),
    "ksize-is-stride": (*_RED_ZONE_CACHE, "iut.ksize(addr=obj_0)"),
    "ksize-zero-size-ptr": ("iut.ksize(addr=0x10)",),
    "kzalloc-not-zeroed": ("obj_0 = iut.kmalloc(size=64, gfp=GFP_ATOMIC)", "iut.kfree(addr=obj_0)", "iut.kzalloc(size=64, gfp=GFP_ATOMIC)"),
    "large-kept-after-page-free": ("iut.kmalloc(size=8193, gfp=GFP_ATOMIC)", "iut.free_pages(pfn=0xfc, order=2)"),
    "large-order-clamped": ("iut.kmalloc(size=65537, gfp=GFP_ATOMIC)",),
    "link-past-block": ("fill_0 = iut.fill(gfp=GFP_ATOMIC|__GFP_MEMALLOC, order=0)", "iut.free_pages(pfn=fill_0[26], order=2)",
                        "iut.free_pages(pfn=fill_0[25], order=2)"),
    "max-order-exclusive": ("iut.alloc_pages(gfp=GFP_ATOMIC, order=4)",),
    "merge-debug-caches": ("iut.kmem_cache_create(name='t', size=1, align=0, flags=0)",
                           "iut.kmem_cache_create(name='u', size=1, align=0, flags=SlabFlag.RED_ZONE)"),
    "merge-head-from-buddy": ("pfn_0 = iut.alloc_pages(gfp=GFP_ATOMIC, order=0)", "iut.free_pages(pfn=pfn_0, order=0)", "iut.check_free_area()"),
    "might-sleep-missing": ("iut.set_context(ctx=Context.ATOMIC)", "iut.alloc_pages(gfp=GFP_KERNEL, order=0)"),
    "no-left-red-zone": (*_RED_ZONE_CACHE, "iut.clobber(addr=obj_0 - 1)", "iut.kmem_cache_validate(cache=cache_0)"),
    "no-order-fallback": _LAST_PAGE_SLAB,
    "no-poison-on-free": _POISON_CACHE,
    "nofail-gives-up": (_FILL_ATOMIC, "iut.alloc_pages(gfp=GFP_KERNEL|__GFP_NOFAIL, order=0)"),
    "on-slab-header": ("iut.kmalloc(size=1024, gfp=GFP_ATOMIC)",),
    "order-clamped": ("iut.get_free_pages(gfp=GFP_ATOMIC, order=5)",),
    "reclaim-always-sleeps": (_FILL_ATOMIC,),
    "reclaim-before-min-retry": (_FILL_NOWAIT, "iut.free_pages(pfn=fill_0[27], order=0)", "iut.alloc_pages(gfp=GFP_KERNEL, order=0)"),
    "refill-with-gfp-kernel": (_FILL_NOWAIT, "iut.kmalloc(size=306, gfp=GFP_ATOMIC)"),
    "reserve-ignores-lowmem": (_FILL_ATOMIC,),
    "shrink-keeps-empty": ("cache_0 = iut.kmem_cache_create(name='t', size=1024, align=0, flags=0)",
                           "obj_0 = iut.kmem_cache_alloc(cache=cache_0, gfp=GFP_ATOMIC)", "iut.kmem_cache_free(cache=cache_0, addr=obj_0)",
                           "iut.kmem_cache_shrink(cache=cache_0)"),
    "size-class-no-96": ("iut.kmalloc(size=65, gfp=GFP_ATOMIC)",),
    "slab-double-free-unchecked": ("obj_0 = iut.kmalloc(size=1, gfp=GFP_ATOMIC)", "iut.kfree(addr=obj_0)", "iut.kfree(addr=obj_0)"),
    "slab-page-free-accepted": ("iut.kmalloc(size=1, gfp=GFP_ATOMIC)", "iut.free_pages(pfn=0xfa, order=0)"),
    "slab-pages-from-highmem": ("iut.kmalloc(size=1, gfp=GFP_ATOMIC)",),
    "slabs-omit-large": ("iut.kmalloc(size=8193, gfp=GFP_ATOMIC)",),
    "stride-too-small": ("cache_0 = iut.kmem_cache_create(name='t', size=168, align=0, flags=0)",
                         "iut.kmem_cache_alloc(cache=cache_0, gfp=GFP_ATOMIC)", "iut.kmem_cache_alloc(cache=cache_0, gfp=GFP_ATOMIC)"),
    "top-merge-loses-a-page": (_FILL_ATOMIC, "iut.free_pages(pfn=fill_0[18], order=4)"),
    "unlink-forgotten": (_FILL_NOWAIT,),
    "validate-no-restore": (*_RED_ZONE_CACHE, "iut.clobber(addr=obj_0 - 1)", "iut.kmem_cache_validate(cache=cache_0)"),
    "validate-red-zones-only": (*_POISON_CACHE, "iut.clobber(addr=obj_0)", "iut.kmem_cache_validate(cache=cache_0)"),
    "wrong-cache-unchecked": ("obj_0 = iut.kmalloc(size=1, gfp=GFP_ATOMIC)", "cache_0 = iut.kmem_cache_create(name='t', size=1, align=0, flags=0)",
                              "iut.kmem_cache_free(cache=cache_0, addr=obj_0)"),
    "zero-head-only": ("pfn_0 = iut.alloc_pages(gfp=GFP_ATOMIC, order=1)", "iut.free_pages(pfn=pfn_0, order=1)",
                       "iut.alloc_pages(gfp=GFP_ATOMIC|__GFP_ZERO, order=1)"),
    "zero-size-null": ("iut.kmalloc(size=0, gfp=GFP_ATOMIC)",),
    "zone-bad-partial": ("iut.alloc_pages(gfp=GFP_KERNEL|__GFP_DMA|__GFP_HIGHMEM, order=0)",),
    "zonelist-unfiltered": ("iut.get_free_pages(gfp=GFP_ATOMIC|__GFP_DMA, order=0)",),
}


def run_program(mutant: str, impl: str | None = None) -> ConformanceFailure | None:
    """Run ``SHORTEST[mutant]`` on ``impl`` (default: the mutant itself) on the mutant's machine: the failure it ends in, or None."""
    namespace = {name: getattr(_gfp, name) for name in dir(_gfp) if name.startswith(("GFP_", "__GFP_"))}
    namespace |= {"Context": Context, "SlabFlag": SlabFlag,
                  "iut": Lockstep(load_impl(impl or f"mutant:{mutant}").factory, MUTANTS[mutant].machine)}
    try:
        for line in SHORTEST[mutant]:
            exec(line, namespace)  # noqa: S102 - the bundled programs above, in the printed tests' own form
        namespace["iut"].check_at_end()
    except ConformanceFailure as failure:
        return failure
    finally:
        namespace["iut"].close()
    return None
