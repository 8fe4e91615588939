"""SLUB debugging: poison, red zones, and what kmem_cache_validate must find.

Models the CONFIG_SLUB_DEBUG part of ``mm/slub.c`` (init_object,
check_object, check_bytes_and_report, validate_slab_cache, restore_bytes) and
the poison values of ``include/linux/poison.h``. A SLAB_POISON cache's free
object reads POISON_FREE and ends with POISON_END; a SLAB_RED_ZONE cache
keeps a red zone byte before and after every object inside its slot.

``SlabDebug`` tracks the free objects of debug caches whose slab the
implementation still shows (their poison and red zones stay checkable), and
the bytes the suite overwrote (``clobber``) until their cache is validated.
Invariants: a tracked free object lies in a shown slab of its own cache and
overlaps no live object; validate runs in process context only, on the
cache whose byte was overwritten.

Neighbours: caches and objects are the slab layer's (``slab``), which tells
this module of changes through ``SlabListener``; ``objects`` composes the two
with ``kmalloc``.
"""

from __future__ import annotations

from dataclasses import dataclass
from operator import attrgetter
from typing import Final

from ._internal import IntervalIndex
from .errors import InvalidArgument, SlabCorruption, failure_for
from .expectation import Expectation, Outcome
from .gfp import GFP_INT
from .rules import Level, Rule
from ._subsystem import Kind, op
from .slab import Cache, LiveObject, SlabLayer

POISON_FREE: Final = 0x6b
"""What a free object of a poisoned cache holds, but for its last byte (include/linux/poison.h)."""

POISON_END: Final = 0xa5
"""The last byte of a poisoned object (include/linux/poison.h)."""


def object_poison(size: int) -> bytes:
    """init_object's poison for an object of ``size`` bytes: POISON_FREE, then POISON_END (mm/slub.c)."""
    return bytes([POISON_FREE]) * (size - 1) + bytes([POISON_END])


@dataclass(frozen=True)
class FreeObject:
    """A free object of a debug cache whose slab the implementation still shows: its poison and red zones are checkable."""

    addr: int
    size: int
    cache: int
    slab: int  # first pfn of its slab

    @property
    def end(self) -> int:
        return self.addr + self.size

    def describe(self) -> str:
        return f"the free {self.size}-byte object at {self.addr:#x} (cache {self.cache})"


@dataclass(frozen=True)
class Corruption:
    """A byte the suite overwrote in a debug area: which object, which area, what it held before."""

    addr: int
    obj: int
    cache: int
    area: str  # "poison", "left red zone", "right red zone"
    rule_id: str
    old: int = 0

    def describe(self) -> str:
        kernel = {"poison": "Poison", "left red zone": "Left Redzone", "right red zone": "Right Redzone"}[self.area]
        return f"byte {self.addr:#x} in the {self.area} of the object at {self.obj:#x} (cache {self.cache}; SLUB: \"{kernel} overwritten\")"


class SlabDebug:
    """SLUB debugging's oracle over the slab layer: poison, red zones, and kmem_cache_validate's verdicts."""

    def __init__(self, slab: SlabLayer) -> None:
        self.slab = slab
        self.free: IntervalIndex[FreeObject] = IntervalIndex(attrgetter("end"))  # free objects of poisoned or red-zoned caches, in slabs still shown
        self._by_slab: dict[int, set[int]] = {}
        self._by_cache: dict[int, set[int]] = {}
        self.corrupt: dict[int, list[Corruption]] = {}  # cache id -> bytes overwritten since its last validate
        slab.listeners.append(self)

    # -- SLAB-POISON ---------------------------------------------------------------------

    def expected_poison(self, cid: int | None, gfp: int) -> bytes | None:
        """SLAB-POISON: what a new object of cache ``cid`` reads, or None when the rule says nothing."""
        caches = self.slab.caches
        if cid is None or gfp & GFP_INT.ZERO or not caches[cid].poisoned:
            return None
        return object_poison(caches[cid].object_size)

    # -- free objects of debug caches -------------------------------------------------------

    def note_free(self, obj: LiveObject) -> FreeObject | None:
        """After a free: keep a free object of a debug cache while its slab is shown (its poison and red zones stay checkable)."""
        slab = self.slab
        if obj.cache is None or not slab.exact:
            return None
        cache = slab.caches[obj.cache]
        pfn = slab.slab_of(obj.addr)
        if not (cache.poisoned or cache.red_zoned) or pfn is None or slab.slab_blocks[pfn][0] != obj.cache:
            return None
        f = FreeObject(obj.addr, cache.object_size, obj.cache, pfn)
        self.free[f.addr] = f
        self._by_slab.setdefault(pfn, set()).add(f.addr)
        self._by_cache.setdefault(f.cache, set()).add(f.addr)
        return f

    def free_object_at(self, addr: int) -> FreeObject | None:
        """The tracked free debug object containing byte ``addr``, or None."""
        return self.free.containing(addr)

    def _forget(self, addr: int) -> None:
        f = self.free.pop(addr)
        self._by_slab.get(f.slab, set()).discard(addr)
        self._by_cache.get(f.cache, set()).discard(addr)

    # -- what the slab layer tells (SlabListener) ------------------------------------------

    def object_placed(self, start: int, end: int) -> None:
        """A new object's bytes are no free object's any more."""
        if not self.free:
            return
        for f in self.free.all_overlapping(start, end):
            self._forget(f.addr)

    def slab_changed(self, pfn: int) -> None:
        """A slab gone or reused: its free objects are no longer checkable."""
        for addr in list(self._by_slab.pop(pfn, ())):
            self._forget(addr)

    def cache_destroyed(self, cid: int) -> None:
        self.corrupt.pop(cid, None)
        for addr in list(self._by_cache.pop(cid, ())):
            self._forget(addr)

    # -- clobber: SLAB-POISON-CHECK, SLAB-REDZONE-CHECK ------------------------------------

    def clobber_sites(self, cid: int, claims: frozenset[str], area: str | None = None) -> list[int]:
        """Bytes of cache ``cid`` whose overwrite the claimed checks must find: red zones next to objects, poison of free
        ones; only those of ``area`` ("left red zone", "right red zone", "poison") when it is given."""
        cache = self.slab.caches[cid]
        free = [self.free[a] for a in sorted(self._by_cache.get(cid, ()))]
        sites: list[int] = []
        if "SLAB-REDZONE-CHECK" in claims and cache.red_zoned:
            live = [(a, cache.object_size) for a in sorted(cache.live) if self._visited(a, cache)] + [(f.addr, f.size) for f in free]
            if area in (None, "left red zone"):
                sites += [a - 1 for a, _ in live]
            if area in (None, "right red zone"):
                sites += [a + size for a, size in live]
        if "SLAB-POISON-CHECK" in claims and cache.poisoned and area in (None, "poison"):
            sites += [s for f in free for s in (f.addr, f.addr + f.size // 2, f.addr + f.size - 1)]
        return sites

    def _visited(self, addr: int, cache: Cache) -> bool:
        """validate_slab_node walks partial slabs, and full ones only with SLAB_STORE_USER (mm/slub.c)."""
        if cache.stores_user:
            return True
        slab = self.slab.slab_of(addr)
        return slab is not None and self.slab.slab_usage[slab][0] < self.slab.slab_usage[slab][1]

    def classify_clobber(self, addr: int, claims: frozenset[str]) -> Corruption:
        """Which debug area byte ``addr`` is in, among the checks claimed (SLAB-POISON-CHECK, SLAB-REDZONE-CHECK).

        A byte inside a tracked free object is its poison; else the byte just
        before or after an object is its red zone. Raises InvalidArgument for a
        byte no claimed check covers, and the red-zone rule's failure when the
        red zone the cache must keep there is missing.
        """
        caches, objects = self.slab.caches, self.slab.objects
        free = self.free_object_at(addr)
        if free is not None and caches[free.cache].poisoned and "SLAB-POISON-CHECK" in claims:
            return Corruption(addr, free.addr, free.cache, "poison", "SLAB-POISON-CHECK")
        if "SLAB-REDZONE-CHECK" in claims:
            candidates: list[tuple[int, int, str, bool]] = []  # (object, cache, area, live)
            after = objects.get(addr + 1) or self.free.get(addr + 1)
            if after is not None and after.cache is not None:
                candidates.append((after.addr, after.cache, "left red zone", addr + 1 in objects))
            # By the cache's object size, not the object's: krealloc of a kmem_cache object in place keeps the red zone
            # where the cache put it (mm/slub.c __do_krealloc sets it again only for kmalloc caches, slub_debug_orig_size).
            before: LiveObject | FreeObject | None = self.slab.objects.at_or_before(addr - 1)
            if before is None or before.cache is None or addr != before.addr + caches[before.cache].object_size:
                before = self.free_object_at(addr - 1)
            if before is not None and before.cache is not None and addr == before.addr + caches[before.cache].object_size:
                candidates.append((before.addr, before.cache, "right red zone", before.addr in objects))
            for obj, cid, area, live in candidates:
                cache = caches[cid]
                if cache.red_zoned and (not live or self._visited(obj, cache)):
                    c = Corruption(addr, obj, cid, area, "SLAB-REDZONE-CHECK")
                    self._check_red_zone(c)
                    return c
        raise InvalidArgument(f"byte {addr:#x} is in no poison or red zone a claimed check covers (a free object of a SLAB_POISON cache: "
                              f"SLAB-POISON-CHECK; the byte before or after an object of a SLAB_RED_ZONE cache in a slab validate visits: "
                              f"SLAB-REDZONE-CHECK)")

    def _check_red_zone(self, c: Corruption) -> None:
        """SLAB-REDZONE-CHECK: the red zone byte lies in the object's slot, not in another object or another slab."""
        name = self.slab.caches[c.cache].name
        other = self.slab.object_at(c.addr) or self.free_object_at(c.addr)
        if other is not None:
            raise failure_for(c.rule_id, f"the {c.area} of the object at {c.obj:#x} ({name}, SLAB_RED_ZONE) is byte {c.addr:#x}, "
                                         f"but that byte belongs to {other.describe()}: the cache keeps no red zone there (mm/slub.c calculate_sizes)")
        slab = self.slab.slab_of(c.obj)
        if slab is None or self.slab.slab_of(c.addr) != slab:
            raise failure_for(c.rule_id, f"the {c.area} of the object at {c.obj:#x} ({name}, SLAB_RED_ZONE) is byte {c.addr:#x}, "
                                         f"outside the object's slab: SLUB keeps both red zones inside the object's slot")

    def expect_validate(self, cid: int) -> Expectation:
        """kmem_cache_validate: every overwritten poison or red zone byte is reported and restored (mm/slub.c validate_slab_cache)."""
        pending = self.corrupt.get(cid)
        cache = self.slab.caches[cid]
        if not pending:
            return Expectation(Outcome.MUST_SUCCEED, "IUT-NO-FALSE-REPORT", f"{cache.name} is intact: it validates without a report")
        c = pending[0]
        return Expectation(Outcome.MUST_SUCCEED, c.rule_id, "", SlabCorruption, c.rule_id, fatal=False, misuse=f"{c.describe()} was overwritten")


# -- SLUB debugging's rules and steps (part of the slab subsystem: objects.SUBSYSTEM) ------

RULES: tuple[Rule, ...] = (
    Rule("SLAB-POISON", "slab", Level.POLICY, "in a SLAB_POISON cache (not SLAB_TYPESAFE_BY_RCU) a new object without __GFP_ZERO, and a free object while its slab stays, read POISON_FREE (0x6b) bytes ending in POISON_END (0xa5) (no constructor, no KFENCE object, as slub_kunit arranges)",
       "mm/slub.c init_object (on free and again on alloc), calculate_sizes (__OBJECT_POISON; the free pointer moves out of the object); include/linux/poison.h; mm/slab.h slab_want_init_on_alloc", capability="memory"),
    Rule("SLAB-POISON-CHECK", "slab", Level.DETECTION, "a byte overwritten in a free object of a SLAB_POISON cache is reported as SlabCorruption by the next kmem_cache_validate, which restores the poison (a second validate reports nothing; no KASAN or KFENCE object, as slub_kunit arranges)",
       "mm/slub.c validate_slab_cache / check_object (\"Poison overwritten\") / restore_bytes; lib/slub_kunit.c test_first_word, test_clobber_50th_byte", capability="slab_debug"),
    Rule("SLAB-REDZONE-CHECK", "slab", Level.DETECTION, "a byte overwritten just before or just after an object of a SLAB_RED_ZONE cache (its left or right red zone; a live object in a slab validate visits: not full, or SLAB_STORE_USER) is reported as SlabCorruption by kmem_cache_validate, which restores it (no KFENCE object, as slub_kunit arranges)",
       "mm/slub.c calculate_sizes (red_left_pad; right red zone 1..8 bytes), check_object (\"Left/Right Redzone overwritten\"), validate_slab_node (full slabs only with SLAB_STORE_USER); lib/slub_kunit.c test_clobber_zone, test_clobber_redzone_free", capability="slab_debug"),
)

OPS = (
    op("kmem_cache_validate", "slab_debug", ("cache", Kind.CACHE),
       doc="validate_slab_cache: report overwritten poison and red zones as SlabCorruption, and restore them"),
    op("clobber", "slab_debug", ("addr", Kind.OBJECT), wire=False,
       doc="overwrite one byte of a poison or red zone, as slub_kunit does"),
)
