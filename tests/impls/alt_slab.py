"""Other correct slab designs, which must pass everything they do not claim as policy.

``make_fullest``: allocation takes the fullest partial slab (keeps slabs
dense; SLUB takes the list head). ``make_hoarder``: empty slabs are never
given back, not even by kmem_cache_shrink, and caches never merge
(slab_nomerge). ``make_lazy_gfp``: reports
kmalloc's bad GFP flags only when it needs a new slab, as the kernel does,
and so does not claim the strict KMALLOC-GFP-BUG. ``make_wide_red_zones``:
24-byte red zones of other values, empty slabs given back at once.
``make_no_debug``: ignores SLAB_RED_ZONE and SLAB_POISON (a kernel without
CONFIG_SLUB_DEBUG) and claims none of their rules.
"""

from dataclasses import replace

from kmemspec.harness.impls.fast import FastBuddy
from kmemspec.harness.impls.slub import SlubLayer
from kmemspec.refmodel.slab import SlabFlag


class _Fullest(SlubLayer):
    prefer_fullest = True


class _Hoarder(SlubLayer):
    min_partial = 1 << 30
    merge = False

    def kmem_cache_shrink(self, cid):
        self.env.might_sleep()
        return 1


class _LazyGfp(SlubLayer):
    strict_gfp_report = False


class _WideRedZones(SlubLayer):
    red_active, red_inactive = 0x3C, 0xC3
    min_partial = 0

    def _new_cache(self, name, object_size, align, flags, *, kmalloc=False):
        cache = super()._new_cache(name, object_size, align, flags & ~SlabFlag.RED_ZONE, kmalloc=kmalloc)
        if not flags & SlabFlag.RED_ZONE:
            return cache
        pad = -(-24 // cache.align) * cache.align
        stride = -(-(pad + object_size + 24) // cache.align) * cache.align
        return replace(cache, flags=flags, red_left_pad=pad, inuse=object_size + 24, size=stride)


_DEBUG_RULES = frozenset({"SLAB-POISON", "SLAB-POISON-CHECK", "SLAB-REDZONE-CHECK"})


class _NoDebug(SlubLayer):
    def _new_cache(self, name, object_size, align, flags, *, kmalloc=False):
        return super()._new_cache(name, object_size, align, flags & ~(SlabFlag.RED_ZONE | SlabFlag.POISON), kmalloc=kmalloc)


def _with(layer, drop_claims=frozenset(), add_claims=frozenset(), drop_capabilities=frozenset()):
    class Alt(FastBuddy):
        capabilities = FastBuddy.capabilities - drop_capabilities
        claims = (FastBuddy.claims - drop_claims) | add_claims

        def __init__(self, machine, env):
            super().__init__(machine, env)
            self.slab = layer(machine, env, self)

    return lambda machine, env: Alt(machine, env)


make_fullest = _with(_Fullest, add_claims=frozenset({"SLAB-PARTIAL-FIRST"}))  # the fullest partial, else an empty slab, else new
make_hoarder = _with(_Hoarder, drop_claims=frozenset({"SLAB-SHRINK-RELEASES"}))
make_lazy_gfp = _with(_LazyGfp, frozenset({"KMALLOC-GFP-BUG"}))
make_wide_red_zones = _with(_WideRedZones)
make_no_debug = _with(_NoDebug, _DEBUG_RULES, drop_capabilities=frozenset({"slab_debug"}))
make = make_fullest
