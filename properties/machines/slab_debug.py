"""SLUB debugging's rule sets: kmem_cache_validate, and slub_kunit's clobber tests on poison and red zones.

``SlabDebugRules`` (capability ``slab_debug``) validates intact caches;
``ClobberRules`` (``slab_debug`` with ``slab_info`` and ``memory``, so the
suite knows the layout and can write the byte) overwrites a poison or red
zone byte and expects validate to report it, restore it, and then find the
cache clean (mm/slub.c validate_slab_cache, lib/slub_kunit.c).
"""

from __future__ import annotations

from hypothesis import assume
from hypothesis import strategies as st
from hypothesis.stateful import precondition, rule

from ...refmodel.gfp import GFP_ZONEMASK
from ...refmodel.slab import SlabFlag
from .._subsystems import register_rule_set
from ._base import claims, not_in_atomic
from .slab import CacheDraws

_ZONE_BITS = int(GFP_ZONEMASK)


class SlabDebugRules(CacheDraws):
    """kmem_cache_validate of an intact cache, in process context (as sysfs and slub_kunit call it)."""

    @precondition(not_in_atomic)
    @rule(data=st.data())
    def kmem_cache_validate(self, data: st.DataObject) -> None:
        """An intact cache validates without a report."""
        self.iut.kmem_cache_validate(self._cache(data))


class ClobberRules(CacheDraws):
    """A red zone or poison byte overwritten, then validated twice: reported and restored, then clean."""

    @precondition(claims("SLAB-REDZONE-CHECK"))
    @precondition(not_in_atomic)
    @rule(data=st.data(), free_first=st.booleans())
    def clobber_left_red_zone(self, data: st.DataObject, free_first: bool) -> None:
        """The byte before an object (freed first or not), which SLUB guards with its left red zone: validate reports
        and restores it (mm/slub.c check_object, "Left Redzone"); validate again is clean."""
        self._clobber_red_zone(data, free_first, "left red zone")

    @precondition(claims("SLAB-REDZONE-CHECK"))
    @precondition(not_in_atomic)
    @rule(data=st.data(), free_first=st.booleans())
    def clobber_right_red_zone(self, data: st.DataObject, free_first: bool) -> None:
        """slub_kunit's test_clobber_zone and test_clobber_redzone_free: the byte after an object (freed first or not)."""
        self._clobber_red_zone(data, free_first, "right red zone")

    @precondition(claims("SLAB-POISON-CHECK"))
    @precondition(not_in_atomic)
    @rule(data=st.data())
    def write_after_free_and_validate(self, data: st.DataObject) -> None:
        """slub_kunit's test_first_word and test_clobber_50th_byte: a byte of an object just freed into a poisoned
        cache overwritten (a use after free); validate reports and restores the poison, then validate again is clean."""
        cache = self._cache(data, need=SlabFlag.POISON)
        addr = self.iut.kmem_cache_alloc(cache, self._gfp(data) & ~_ZONE_BITS)
        if addr is None:  # an allowed NULL: nothing to write into, and the steps so far still count
            return
        self.iut.kmem_cache_free(cache, addr)
        end = addr + self.iut.slab.caches[cache].object_size
        sites = [s for s in self.iut.slab.clobber_sites(cache, self.target.claims, "poison") if addr <= s < end]
        self._clobber_one(cache, sites, data)

    def _clobber_red_zone(self, data: st.DataObject, free_first: bool, area: str) -> None:
        """An object of a red-zoned cache (freed first or not), then a byte of its ``area`` clobbered and validated."""
        cache = self._cache(data, need=SlabFlag.RED_ZONE)
        addr = self.iut.kmem_cache_alloc(cache, self._gfp(data) & ~_ZONE_BITS)
        if addr is not None and free_first:
            self.iut.kmem_cache_free(cache, addr)
        self._clobber_one(cache, self.iut.slab.clobber_sites(cache, self.target.claims, area), data)

    def _clobber_one(self, cache: int, sites: list[int], data: st.DataObject) -> None:
        """One of ``sites`` overwritten, then the cache validated twice: reported and restored, then clean."""
        assume(sites)
        self.iut.clobber(data.draw(st.sampled_from(sites), label="byte"))
        self.iut.kmem_cache_validate(cache)
        self.iut.kmem_cache_validate(cache)


# slab_debug alone, not with slab: today's suite draws kmem_cache_validate (which makes its own caches)
# for every implementation that declares slab_debug, the page mutants among them.
register_rule_set({"slab", "slab_debug"}, SlabDebugRules)  # validation needs caches
register_rule_set({"slab", "slab_debug", "slab_info", "memory"}, ClobberRules)
