"""kmalloc's steps: kmalloc, kzalloc, kmalloc_array, krealloc, ksize, kfree.

Each asks the slab oracle what is allowed, checks what came back with the
slab layer's object mechanics (``slab.SlabLayer``: lowmem RAM, zone,
alignment, no overlap, zeroed), and judges the kmalloc rules: ZERO_SIZE_PTR,
KMALLOC_MAX_SIZE, the array overflow, krealloc's contents and ksize.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any, Callable

from ...refmodel.errors import InvalidArgument, SleepInAtomic, UnexpectedGfp
from ...refmodel.gfp import GFP_INT, format_gfp
from ...refmodel.page_alloc import Expectation, Outcome
from ...refmodel.kmalloc import ZERO_SIZE_PTR, kmalloc_bucket_name, kmalloc_min_align, kmalloc_size_roundup
from ...refmodel.slab import LiveObject, SlabFlag
from ._checker import Checker, Lazy, call_text, register_checker
from .slab import SlabLayer

if TYPE_CHECKING:
    from . import Lockstep

_ZERO = GFP_INT.ZERO


class KmallocChecker(Checker):
    """The kmalloc family, judged against the slab oracle."""

    subsystem = "kmalloc"
    steps = ("kmalloc", "kzalloc", "kmalloc_array", "krealloc", "ksize", "kfree")

    def __init__(self, driver: Lockstep) -> None:
        super().__init__(driver)
        self.layer = SlabLayer.of(driver)

    def kmalloc(self, size: int, gfp: int) -> int | None:
        """kmalloc(size, gfp): a logical address, ZERO_SIZE_PTR for 0 bytes, or None."""
        return self._kmalloc("kmalloc", {"size": size, "gfp": gfp}, size, gfp, lambda: self.d.iut.kmalloc(size, gfp))

    def kzalloc(self, size: int, gfp: int) -> int | None:
        """kzalloc(size, gfp) = kmalloc(size, gfp | __GFP_ZERO)."""
        return self._kmalloc("kzalloc", {"size": size, "gfp": gfp}, size, gfp | _ZERO, lambda: self.d.iut.kzalloc(size, gfp))

    def kmalloc_array(self, n: int, size: int, gfp: int) -> int | None:
        """kmalloc_array(n, size, gfp): NULL when n * size overflows size_t."""
        d = self.d
        call = lambda: d.iut.kmalloc_array(n, size, gfp)  # noqa: E731
        values = {"n": n, "size": size, "gfp": gfp}
        if n * size >= 1 << d.machine.word_bits:
            e = Expectation(Outcome.MUST_FAIL, "KMALLOC-ARRAY-OVERFLOW", f"{n} * {size} overflows a {d.machine.word_bits}-bit size_t")
            _, result, _ = self.layer.step("kmalloc_array", values, e, call, gfp=gfp)
            d.coverage["KMALLOC-ARRAY-OVERFLOW"] += 1
            if result not in (None, 0):
                raise d.fail("KMALLOC-ARRAY-OVERFLOW", f"kmalloc_array({n}, {size}, {format_gfp(gfp)}) returned {result!r}; {e.reason}, so it must return NULL")
            return None
        return self._kmalloc("kmalloc_array", values, n * size, gfp, call)

    def _kmalloc(self, op: str, values: dict[str, Any], size: int, gfp: int, call: Callable[[], Any]) -> int | None:
        d = self.d
        e = d.slab.expect_kmalloc(size, gfp, d.env.context)
        step, result, refused = self.layer.step(op, values, e, call, gfp=gfp)
        if refused:
            return None
        what = Lazy(lambda: call_text(op, values))
        if size == 0:
            d.coverage["KMALLOC-ZERO-SIZE"] += 1
            if result != ZERO_SIZE_PTR:
                raise d.fail("KMALLOC-ZERO-SIZE", f"{what} returned {result!r}; a 0-byte request returns ZERO_SIZE_PTR ({ZERO_SIZE_PTR:#x})")
            return ZERO_SIZE_PTR
        if e.outcome is Outcome.MUST_FAIL:
            d.coverage[e.rule_id] += 1
        d.requests[kmalloc_bucket_name(size, d.machine), result not in (None, 0)] += 1
        if result is None or result == 0:
            d.expect_null(e, what)
            return None
        addr = d.int_result(result, op)
        if e.outcome is Outcome.MUST_FAIL:
            raise d.fail(e.rule_id, f"{what} returned {addr:#x}, but {e.reason}: it must return NULL")
        self.layer.place(what, addr, size, gfp, align=kmalloc_min_align(size), align_rule="KMALLOC-ALIGN", cid=None)
        step.result = d.names.bind_object(addr)
        if "KMALLOC-SIZE-CLASS" in d.claims:  # a claimed size class is checked on every object, as a step of its own
            d.implying = True
            try:
                self.ksize(addr)
            finally:
                d.implying = False
        return addr

    def krealloc(self, addr: int, size: int, gfp: int) -> int | None:
        """krealloc(p, size, gfp): the contents up to the smaller size move with the object; a kmem_cache object stays
        while it fits, else it moves to kmalloc."""
        d = self.d
        call = lambda: d.iut.krealloc(addr, size, gfp)  # noqa: E731
        values = {"addr": addr, "size": size, "gfp": gfp}
        if addr <= ZERO_SIZE_PTR:
            return self._kmalloc("krealloc", values, size, gfp, call)
        old = d.slab.objects.get(addr)
        if old is None:
            raise InvalidArgument(f"krealloc({addr:#x}) of something that is not a live slab object is undefined; the suite does not judge it")
        what = Lazy(lambda: f"krealloc({addr:#x}, {size}, {format_gfp(gfp)})")
        # p's contents are checked once the step is recorded, so a failure there shows the krealloc it happened at.
        verify_old = lambda: d.contents.verify_object(old)  # noqa: E731
        if size == 0:
            e = Expectation(Outcome.MUST_SUCCEED, "KREALLOC", "krealloc(p, 0) frees p")
            _, result, _ = self.layer.step("krealloc", values, e, call, gfp=None, before=verify_old)
            d.coverage["KREALLOC"] += 1
            if result != ZERO_SIZE_PTR:
                raise d.fail("KREALLOC", f"{what} returned {result!r}; krealloc(p, 0) frees p and returns ZERO_SIZE_PTR ({ZERO_SIZE_PTR:#x})")
            self.layer.drop(addr)
            return ZERO_SIZE_PTR
        e = moved = d.slab.expect_kmalloc(size, gfp, d.env.context)
        if e.report in (UnexpectedGfp, SleepInAtomic):
            # In place, krealloc reaches neither might_alloc() nor kmalloc_fix_flags
            # (mm/slab_common.c __do_krealloc): a report is allowed, not required.
            e = replace(e, report=None, report_rule=None, misuse="", also_report=(e.report, *e.also_report))
        step, result, refused = self.layer.step("krealloc", values, e, call, gfp=gfp, before=verify_old)
        d.coverage["KREALLOC"] += 1
        if refused or result is None or result == 0:
            if not refused:
                d.expect_null(e, what)
            d.contents.verify_object(old)  # on failure p stays, intact
            return None
        new = d.int_result(result, "krealloc")
        if e.outcome is Outcome.MUST_FAIL:
            raise d.fail(e.rule_id, f"{what} returned {new:#x}, but {e.reason}: it must return NULL")
        expected = d.contents.object_pattern(addr, min(old.size, size))
        if new != addr:
            self._reported_on_move(moved, what)
        if new == addr:
            self._check_fits_in_place(old, size, what)
            d.slab.check_free_of_objects(addr, addr + size, what, ignore=addr)
            self.layer.check_no_page_block(addr, size, what)
            d.slab.adopt_resize(addr, size)
        else:
            # Not judged for __GFP_ZERO: the old contents are copied over the zeroed object.
            self.layer.place(what, new, size, gfp & ~_ZERO, align=kmalloc_min_align(size), align_rule="KMALLOC-ALIGN", cid=None, write=False)
            self.layer.drop(addr)
        diff = d.contents.difference(new, expected)
        if diff is not None:
            raise d.fail("KREALLOC", f"{what} returned {new:#x}, whose first {len(expected)} bytes must be the old object's: {diff}")
        d.contents.write_object(d.slab.objects[new])
        step.result = d.names.bind_object(new)
        return new

    def _check_fits_in_place(self, old: LiveObject, size: int, what: str | Lazy) -> None:
        """KREALLOC: a kmem_cache object stays only while the new size fits ksize (mm/slab_common.c __do_krealloc; mm/slab.h
        slab_ksize): the cache's stride at most, its object size where SLUB debugging lays out red zones or poison."""
        d = self.d
        if old.cache is None:
            return
        cache = d.slab.caches[old.cache]
        debug = "slab_debug" in d.capabilities and cache.flags & (SlabFlag.RED_ZONE | SlabFlag.POISON)
        most = cache.object_size if debug else cache.stride_bound
        if size > most:
            raise d.fail("KREALLOC", f"{what} kept the object of cache {cache.name} in place, but {size} bytes exceed its ksize "
                                     f"(at most {most}): krealloc must move it to a kmalloc object")

    def _reported_on_move(self, e: Expectation, what: str | Lazy) -> None:
        """A krealloc that moved allocated through kmalloc (mm/slab_common.c __do_krealloc): its might_alloc()
        splat and its Unexpected gfp are required where claimed, as for kmalloc."""
        d = self.d
        if e.report not in (UnexpectedGfp, SleepInAtomic) or e.report_rule not in d.claims:
            return
        if not any(isinstance(r, e.report) for r in d.step_reports):
            raise d.fail(e.report_rule, f"{what} moved the object, so it allocated a new one with kmalloc: {e.misuse}, "  # type: ignore[arg-type]
                                        f"which must be reported as {e.report.__name__} ({d.label} claims {e.report_rule}); nothing was reported")

    def ksize(self, addr: int) -> int:
        """ksize(p): the usable size of a live object; 0 for NULL and ZERO_SIZE_PTR."""
        d = self.d
        obj = d.slab.objects.get(addr)
        if addr > ZERO_SIZE_PTR and obj is None:
            raise InvalidArgument(f"ksize({addr:#x}) of something that is not a live object is undefined; the suite does not judge it")
        e = Expectation(Outcome.MUST_SUCCEED, "KSIZE-COVERS", "ksize of a live object")
        _, result, _ = self.layer.step("ksize", {"addr": addr}, e, lambda: d.iut.ksize(addr), gfp=None)
        n = d.int_result(result, "ksize")
        if obj is None:
            d.coverage["KFREE-NULL"] += 1
            if n != 0:
                raise d.fail("KFREE-NULL", f"ksize({addr:#x}) returned {n}; ksize of NULL or ZERO_SIZE_PTR is 0")
            return n
        d.coverage["KSIZE-COVERS"] += 1
        if n < obj.size:
            raise d.fail("KSIZE-COVERS", f"ksize({addr:#x}) returned {n}, less than the {obj.size} bytes asked for")
        if obj.cache is not None and "slab_debug" in d.capabilities:
            cache = d.slab.caches[obj.cache]
            if cache.flags & (SlabFlag.RED_ZONE | SlabFlag.POISON) and n != cache.object_size:
                # mm/slab.h slab_ksize: with SLUB debugging the bytes after the object are its red zone or padding.
                raise d.fail("KSIZE-COVERS", f"ksize({addr:#x}) returned {n}; an object of cache {cache.name}, which has "
                                             f"SLAB_RED_ZONE or SLAB_POISON, has ksize = its object size {cache.object_size}")
        other = d.slab.overlapping(addr, addr + n, ignore=addr)
        if other is not None:
            raise d.fail("KSIZE-COVERS", f"ksize({addr:#x}) returned {n}, but [{addr:#x}, {addr + n:#x}) overlaps {other.describe()}")
        if obj.cache is None and "KMALLOC-SIZE-CLASS" in d.claims:
            d.coverage["KMALLOC-SIZE-CLASS"] += 1
            want = kmalloc_size_roundup(obj.alloc_size, d.machine)
            if n != want:
                raise d.fail("KMALLOC-SIZE-CLASS", f"ksize of kmalloc({obj.alloc_size}) is {n}; the kernel's kmalloc bucket for {obj.alloc_size} bytes is {want}")
        obj.span = max(obj.span, n)
        return n

    def kfree(self, addr: int) -> None:
        """kfree(p): kmalloc and kmem_cache_alloc objects; NULL and ZERO_SIZE_PTR do nothing."""
        self.layer.free("kfree", None, addr, lambda: self.d.iut.kfree(addr))


register_checker(KmallocChecker)
