"""Other correct slab designs, which must pass everything they do not claim as policy.

``make_fullest``: allocation takes the fullest partial slab (keeps slabs
dense; SLUB takes the list head). ``make_hoarder``: empty slabs are never
given back, not even by kmem_cache_shrink. ``make_lazy_gfp``: reports
kmalloc's bad GFP flags only when it needs a new slab, as the kernel does,
and so does not claim the strict KMALLOC-GFP-BUG.
"""

from kmemspec.harness.impls.fast import FastBuddy
from kmemspec.harness.impls.slub import SlubLayer


class _Fullest(SlubLayer):
    prefer_fullest = True


class _Hoarder(SlubLayer):
    min_partial = 1 << 30

    def kmem_cache_shrink(self, cid):
        self.env.might_sleep()
        return 1


class _LazyGfp(SlubLayer):
    strict_gfp_report = False


def _with(layer, drop_claims=frozenset(), add_claims=frozenset()):
    class Alt(FastBuddy):
        claims = (FastBuddy.claims - drop_claims) | add_claims

        def __init__(self, machine, env):
            super().__init__(machine, env)
            self.slab = layer(machine, env, self)

    return lambda machine, env: Alt(machine, env)


make_fullest = _with(_Fullest, add_claims=frozenset({"SLAB-PARTIAL-FIRST"}))  # the fullest partial, else an empty slab, else new
make_hoarder = _with(_Hoarder, drop_claims=frozenset({"SLAB-SHRINK-RELEASES"}))
make_lazy_gfp = _with(_LazyGfp, frozenset({"KMALLOC-GFP-BUG"}))
make = make_fullest
