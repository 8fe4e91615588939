"""SLUB debugging's steps: kmem_cache_validate and the suite's clobber; the poison a new or freed object must show.

Only validation judges a corruption, as slub_kunit does: the suite
overwrites one poison or red zone byte (``clobber``) and validates its
cache at once. SLAB-POISON is checked on every new object without
__GFP_ZERO and on every freed object of a poisoned cache, where claimed.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from ...refmodel.context import in_atomic
from ...refmodel.errors import InvalidArgument
from ...refmodel.slab import LiveObject
from ...refmodel.slab_debug import object_poison
from ..trace import Ref, Step
from ._checker import Checker, Lazy, register_checker
from ._contents import ZERO_CHECK_LIMIT
from .slab import SlabLayer

if TYPE_CHECKING:
    from . import Lockstep


class SlabDebugChecker(Checker):
    """kmem_cache_validate, clobber, and SLAB-POISON on the objects the slab layer hands out and takes back."""

    subsystem = "slab"
    steps = ("kmem_cache_validate", "clobber")

    def __init__(self, driver: Lockstep) -> None:
        super().__init__(driver)
        layer = SlabLayer.of(driver)
        layer.on_place.append(self._new_object)
        layer.on_free.append(self._freed_object)
        driver.before_step.append(self._only_validate_after_clobber)
        self.layer = layer

    def _only_validate_after_clobber(self, op: str) -> None:
        if self.d.slab.corrupt and op != "kmem_cache_validate":
            raise InvalidArgument(f"{op} right after clobber: a corruption is judged by kmem_cache_validate of its cache alone, "
                                  f"before anything else rewrites the byte (as slub_kunit validates at once)")

    def kmem_cache_validate(self, cache: int) -> None:
        """kmem_cache_validate(cache): every overwritten poison or red zone byte is reported, then restored."""
        d = self.d
        if cache not in d.slab.caches:
            raise InvalidArgument(f"kmem_cache_validate of cache {cache}, which is not live, is undefined")
        if in_atomic(d.env.context):
            raise InvalidArgument("validate_slab_cache runs in process context (sysfs, slub_kunit); the suite calls it only there")
        if d.slab.corrupt and cache not in d.slab.corrupt:
            raise InvalidArgument(f"a byte of cache {min(d.slab.corrupt)} was overwritten: validate that cache first")
        e = d.slab.expect_validate(cache)
        _, result, _ = self.layer.step("kmem_cache_validate", {"cache": cache}, e, lambda: d.iut.kmem_cache_validate(cache), gfp=None)
        d.none_result(result, "kmem_cache_validate")
        for c in d.slab.corrupt.pop(cache, []):
            got = d.contents.read(c.addr, 1)[0]
            if got != c.old:
                raise d.fail(c.rule_id, f"kmem_cache_validate reported the overwritten {c.describe()} but left it: it reads {got:#04x}, "
                                        f"it held {c.old:#04x}; SLUB restores the bytes it reports (restore_bytes)")
        if d.check_memory:
            d.contents.verify_objects()  # restoring touched nothing the caller owns

    def clobber(self, addr: int) -> None:
        """Overwrite the byte at ``addr`` in a poison or red zone area, as slub_kunit does; the next step must validate its cache.

        Only validation judges a corruption (alloc and free would rewrite the
        byte, and SLUB's validate reports the first bad object of each slab),
        so one byte at a time, and nothing else until its cache is validated.
        """
        d = self.d
        if not d.check_memory:
            raise InvalidArgument("clobber writes memory: the implementation needs the memory capability")
        if d.slab.corrupt:
            raise InvalidArgument(f"a byte of cache {min(d.slab.corrupt)} is already overwritten: kmem_cache_validate it first")
        step = Step("clobber", {"addr": addr})
        d.trace.append(step)  # before classifying: a missing red zone fails with this step shown
        try:
            c = d.checked(lambda: d.slab.classify_clobber(addr, d.claims))
        except InvalidArgument:
            d.trace.pop()  # refused: nothing was written
            raise
        name = d.names.object_name(c.obj)
        if name is not None:
            step.args["addr"] = Ref(name, addr - c.obj)
        old = d.contents.read(addr, 1)[0]
        d.contents.write(addr, bytes([old ^ 0xFF]))
        d.slab.corrupt.setdefault(c.cache, []).append(replace(c, old=old))

    # -- SLAB-POISON --------------------------------------------------------------------------

    def _claimed(self) -> bool:
        return self.d.check_memory and "SLAB-POISON" in self.d.claims

    def _new_object(self, obj: LiveObject, cid: int | None, gfp: int, what: str | Lazy) -> None:
        if self._claimed() and self.d.slab.expected_poison(cid, gfp) is not None:
            self._check_poison(obj, what)

    def _freed_object(self, obj: LiveObject, op: str) -> None:
        slab = self.d.slab
        # Keep a free object of a debug cache while its slab is shown: its poison and red zones stay checkable.
        if slab.note_free(obj) is not None and self._claimed() and slab.caches[obj.cache].poisoned:  # type: ignore[index]
            self._check_poison(replace(obj, size=slab.caches[obj.cache].object_size), f"after {op}({obj.addr:#x})")  # type: ignore[index]

    def _check_poison(self, obj: LiveObject, what: str | Lazy) -> None:
        """SLAB-POISON: the object reads POISON_FREE ... POISON_END (where claimed and memory is exposed)."""
        d = self.d
        want = object_poison(obj.size)[-ZERO_CHECK_LIMIT:]
        d.coverage["SLAB-POISON"] += 1
        got = d.contents.read(obj.addr + obj.size - len(want), len(want))
        if got != want:
            off = obj.size - len(want) + next(i for i, (a, b) in enumerate(zip(got, want)) if a != b)
            raise d.fail("SLAB-POISON", f"{what}: byte {off} of the {obj.size}-byte object at {obj.addr:#x} (a SLAB_POISON cache) reads "
                                        f"{got[off - obj.size + len(want)]:#04x}, not {want[off - obj.size + len(want)]:#04x}: init_object fills it with "
                                        f"POISON_FREE (0x6b) and ends it with POISON_END (0xa5) on alloc and on free; keep the free pointer "
                                        f"outside the object, as calculate_sizes does for poisoned caches")


register_checker(SlabDebugChecker)
