"""The lockstep checker's kmalloc and slab calls (capabilities ``kmalloc`` and ``slab``).

A mixin of ``Lockstep``: each call asks the slab oracle what is allowed,
calls the implementation, checks the object that came back (lowmem RAM,
zone, alignment, no overlap, zeroed, size), adopts it, and writes a pattern
into it that must survive until its free.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Callable

from ..refmodel.context import in_atomic
from ..refmodel.errors import InvalidArgument, SleepInAtomic, UnexpectedGfp
from ..refmodel.gfp import GFP, GFP_KERNEL, format_gfp
from ..refmodel.page_alloc import Expectation, Outcome
from ..refmodel.slab import ZERO_SIZE_PTR, LiveObject, calculate_alignment, kmalloc_min_align, kmalloc_size_roundup, object_poison
from .trace import Ref, Step

if TYPE_CHECKING:
    from .lockstep import Lockstep

_ZERO = int(GFP.ZERO)
_ZONE_BITS = int(GFP.DMA | GFP.DMA32 | GFP.HIGHMEM)
_SITE = 16  # pattern bytes at the start and at the end of an object
_ZERO_CHECK_LIMIT = 1 << 16  # bytes of a zeroed object read back


class SlabCalls:
    """kmalloc, kzalloc, kmalloc_array, krealloc, ksize, kfree and the kmem_cache_* calls, judged."""

    # -- kmalloc family ---------------------------------------------------------------

    def kmalloc(self: Lockstep, size: int, gfp: int) -> int | None:
        """kmalloc(size, gfp): a logical address, ZERO_SIZE_PTR for 0 bytes, or None."""
        return self._kmalloc("kmalloc", {"size": size, "gfp": gfp}, size, gfp, lambda: self.iut.kmalloc(size, gfp))

    def kzalloc(self: Lockstep, size: int, gfp: int) -> int | None:
        """kzalloc(size, gfp) = kmalloc(size, gfp | __GFP_ZERO)."""
        return self._kmalloc("kzalloc", {"size": size, "gfp": gfp}, size, gfp | _ZERO, lambda: self.iut.kzalloc(size, gfp))

    def kmalloc_array(self: Lockstep, n: int, size: int, gfp: int) -> int | None:
        """kmalloc_array(n, size, gfp): NULL when n * size overflows size_t."""
        call = lambda: self.iut.kmalloc_array(n, size, gfp)  # noqa: E731
        if n * size >= 1 << self.machine.word_bits:
            e = Expectation(Outcome.MUST_FAIL, "KMALLOC-ARRAY-OVERFLOW", f"{n} * {size} overflows a {self.machine.word_bits}-bit size_t")
            self._record("kmalloc_array", {"n": n, "size": size, "gfp": gfp}, e)
            result, _ = self._slab_call(e, gfp, call)
            self.coverage["KMALLOC-ARRAY-OVERFLOW"] += 1
            if result not in (None, 0):
                raise self._fail("KMALLOC-ARRAY-OVERFLOW", f"kmalloc_array({n}, {size}, {format_gfp(gfp)}) returned {result!r}; {e.reason}, so it must return NULL")
            return None
        return self._kmalloc("kmalloc_array", {"n": n, "size": size, "gfp": gfp}, n * size, gfp, call)

    def _kmalloc(self: Lockstep, op: str, args: dict[str, Any], size: int, gfp: int, call: Callable[[], Any]) -> int | None:
        e = self.slab.expect_kmalloc(size, gfp, self.env.context)
        self._refuse_unclaimed_slab(e, op, args)
        step = self._record(op, args, e)
        result, refused = self._slab_call(e, gfp, call)
        if refused:
            return None
        what = _call_text(op, args)
        if size == 0:
            self.coverage["KMALLOC-ZERO-SIZE"] += 1
            if result != ZERO_SIZE_PTR:
                raise self._fail("KMALLOC-ZERO-SIZE", f"{what} returned {result!r}; a 0-byte request returns ZERO_SIZE_PTR ({ZERO_SIZE_PTR:#x})")
            return ZERO_SIZE_PTR
        if e.outcome is Outcome.MUST_FAIL:
            self.coverage[e.rule_id] += 1
        if result is None or result == 0:
            self._expect_null(e, what)
            return None
        addr = self._int_result(result, op)
        if e.outcome is Outcome.MUST_FAIL:
            raise self._fail(e.rule_id, f"{what} returned {addr:#x}, but {e.reason}: it must return NULL")
        self._place_object(what, addr, size, gfp, align=kmalloc_min_align(size), align_rule="KMALLOC-ALIGN", cid=None)
        step.result = self._bind_object(addr)
        if "KMALLOC-SIZE-CLASS" in self.claims:
            self.ksize(addr)  # a claimed size class is checked on every object, as its own step
        return addr

    def krealloc(self: Lockstep, addr: int, size: int, gfp: int) -> int | None:
        """krealloc(p, size, gfp): the contents up to the smaller size move with the object."""
        if addr <= ZERO_SIZE_PTR:
            return self._kmalloc("krealloc", {"addr": addr, "size": size, "gfp": gfp}, size, gfp, lambda: self.iut.krealloc(addr, size, gfp))
        old = self.slab.objects.get(addr)
        if old is None or old.cache is not None:
            raise InvalidArgument(f"krealloc({addr:#x}) of something that is not a live kmalloc object is undefined; the suite does not judge it")
        args = {"addr": self._obj_arg(addr), "size": size, "gfp": gfp}
        what = f"krealloc({addr:#x}, {size}, {format_gfp(gfp)})"
        call = lambda: self.iut.krealloc(addr, size, gfp)  # noqa: E731
        self._verify_object(old)
        if size == 0:
            e = Expectation(Outcome.MUST_SUCCEED, "KREALLOC", "krealloc(p, 0) frees p")
            self._record("krealloc", args, e)
            result, _ = self._slab_call(e, None, call)
            self.coverage["KREALLOC"] += 1
            if result != ZERO_SIZE_PTR:
                raise self._fail("KREALLOC", f"{what} returned {result!r}; krealloc(p, 0) frees p and returns ZERO_SIZE_PTR ({ZERO_SIZE_PTR:#x})")
            self._drop_object(addr)
            return ZERO_SIZE_PTR
        e = self.slab.expect_kmalloc(size, gfp, self.env.context)
        if e.report in (UnexpectedGfp, SleepInAtomic):
            # In place, krealloc reaches neither might_alloc() nor kmalloc_fix_flags
            # (mm/slab_common.c __do_krealloc): a report is allowed, not required.
            e = replace(e, report=None, report_rule=None, misuse="", also_report=(e.report, *e.also_report))
        self._refuse_unclaimed_slab(e, "krealloc", args)
        step = self._record("krealloc", args, e)
        result, refused = self._slab_call(e, gfp, call)
        self.coverage["KREALLOC"] += 1
        if refused or result is None or result == 0:
            if not refused:
                self._expect_null(e, what)
            self._verify_object(old)  # on failure p stays, intact
            return None
        new = self._int_result(result, "krealloc")
        if e.outcome is Outcome.MUST_FAIL:
            raise self._fail(e.rule_id, f"{what} returned {new:#x}, but {e.reason}: it must return NULL")
        keep = min(old.size, size)
        expected = self._obj_patterns[addr][0][:min(_SITE, keep)]
        if new == addr:
            self.slab.check_free_of_objects(addr, addr + size, what, ignore=addr)
            self._check_no_page_block(addr, size, what)
            self.slab.adopt_resize(addr, size)
        else:
            # Not judged for __GFP_ZERO: the old contents are copied over the zeroed object.
            self._place_object(what, new, size, gfp & ~_ZERO, align=kmalloc_min_align(size), align_rule="KMALLOC-ALIGN", cid=None, write=False)
            self._drop_object(addr)
        got = self._read(new, len(expected))
        if got != expected:
            raise self._fail("KREALLOC", f"{what} returned {new:#x}, whose first {len(expected)} bytes read {got.hex()}; the old object held {expected.hex()} there")
        self._write_object_pattern(self.slab.objects[new])
        step.result = self._bind_object(new)
        return new

    def ksize(self: Lockstep, addr: int) -> int:
        """ksize(p): the usable size of a live object; 0 for NULL and ZERO_SIZE_PTR."""
        obj = self.slab.objects.get(addr)
        if addr > ZERO_SIZE_PTR and obj is None:
            raise InvalidArgument(f"ksize({addr:#x}) of something that is not a live object is undefined; the suite does not judge it")
        e = Expectation(Outcome.MUST_SUCCEED, "KSIZE-COVERS", "ksize of a live object")
        self._record("ksize", {"addr": self._obj_arg(addr)}, e)
        result, _ = self._slab_call(e, None, lambda: self.iut.ksize(addr))
        n = self._int_result(result, "ksize")
        if obj is None:
            self.coverage["KFREE-NULL"] += 1
            if n != 0:
                raise self._fail("KFREE-NULL", f"ksize({addr:#x}) returned {n}; ksize of NULL or ZERO_SIZE_PTR is 0")
            return n
        self.coverage["KSIZE-COVERS"] += 1
        if n < obj.size:
            raise self._fail("KSIZE-COVERS", f"ksize({addr:#x}) returned {n}, less than the {obj.size} bytes asked for")
        other = self.slab.overlapping(addr, addr + n, ignore=addr)
        if other is not None:
            raise self._fail("KSIZE-COVERS", f"ksize({addr:#x}) returned {n}, but [{addr:#x}, {addr + n:#x}) overlaps {other.describe()}")
        if obj.cache is None and "KMALLOC-SIZE-CLASS" in self.claims:
            self.coverage["KMALLOC-SIZE-CLASS"] += 1
            want = kmalloc_size_roundup(obj.alloc_size, self.machine)
            if n != want:
                raise self._fail("KMALLOC-SIZE-CLASS", f"ksize of kmalloc({obj.alloc_size}) is {n}; the kernel's kmalloc bucket for {obj.alloc_size} bytes is {want}")
        obj.span = max(obj.span, n)
        return n

    def kfree(self: Lockstep, addr: int) -> None:
        """kfree(p): kmalloc and kmem_cache_alloc objects; NULL and ZERO_SIZE_PTR do nothing."""
        self._free_object("kfree", None, addr, lambda: self.iut.kfree(addr))

    # -- kmem_cache ---------------------------------------------------------------------------

    def kmem_cache_create(self: Lockstep, name: str, size: int, align: int, flags: int) -> int | None:
        """kmem_cache_create(name, size, align, flags): a cache id, or None."""
        e = self.slab.expect_cache_create(size, align, flags, self.env.context)
        args: dict[str, Any] = {"name": name, "size": size, "align": align, "flags": flags}
        self._refuse_unclaimed_slab(e, "kmem_cache_create", args)
        step = self._record("kmem_cache_create", args, e)
        result, refused = self._slab_call(e, GFP_KERNEL, lambda: self.iut.kmem_cache_create(name, size, align, flags))
        if refused or result is None:
            return None
        cid = self._int_result(result, "kmem_cache_create")
        if cid == 0 or cid in self.slab.caches:
            why = "0, which slabs() reserves for kmalloc's own caches" if cid == 0 else f"{cid}, which names a live cache already"
            raise self._fail("IUT-RETURN-TYPE", f"kmem_cache_create({name!r}) returned cache id {why}")
        self.slab.adopt_cache(cid, name, size, align, flags)
        step.result = self._bind_cache(cid)
        return cid

    def kmem_cache_alloc(self: Lockstep, cache: int, gfp: int) -> int | None:
        """kmem_cache_alloc(cache, gfp): an object of the cache's size and alignment, or None."""
        c = self.slab.caches.get(cache)
        if c is None:
            raise InvalidArgument(f"kmem_cache_alloc on cache {cache}, which is not live, is undefined")
        e = self.slab.expect_cache_alloc(cache, gfp, self.env.context)
        policy = self.slab.exact and "SLAB-PARTIAL-FIRST" in self.claims
        before = {pfn: (c, o, *self.slab.slab_usage[pfn]) for pfn, (c, o) in self.slab.slab_blocks.items()} if policy else {}
        args = {"cache": self._cache_arg(cache), "gfp": gfp}
        self._refuse_unclaimed_slab(e, "kmem_cache_alloc", args)
        step = self._record("kmem_cache_alloc", args, e)
        result, refused = self._slab_call(e, gfp, lambda: self.iut.kmem_cache_alloc(cache, gfp))
        what = f"kmem_cache_alloc({c.name}, {format_gfp(gfp)})"
        if refused or result is None or result == 0:
            if not refused:
                self._expect_null(e, what)
            return None
        addr = self._int_result(result, "kmem_cache_alloc")
        # new_slab keeps only the caller's reclaim flags: the zone is the cache's (s->allocflags), whatever gfp says.
        self._place_object(what, addr, c.object_size, (gfp & ~_ZONE_BITS) | c.zone_gfp, align=calculate_alignment(c.flags, c.align, c.object_size),
                           align_rule="SLAB-CACHE-ALIGN", cid=cache)
        step.result = self._bind_object(addr)
        if policy:
            self.coverage["SLAB-PARTIAL-FIRST"] += 1
            self._checked(lambda: self.slab.check_partial_first(cache, addr, before))
        return addr

    def kmem_cache_free(self: Lockstep, cache: int, addr: int) -> None:
        """kmem_cache_free(cache, p)."""
        self._free_object("kmem_cache_free", cache, addr, lambda: self.iut.kmem_cache_free(cache, addr))

    def kmem_cache_destroy(self: Lockstep, cache: int) -> None:
        """kmem_cache_destroy(cache): a busy cache is reported and stays, with its objects."""
        if cache not in self.slab.caches:
            raise InvalidArgument(f"kmem_cache_destroy of cache {cache}, which is not live, is undefined")
        e = self.slab.expect_cache_destroy(cache, self.env.context)
        args = {"cache": self._cache_arg(cache)}
        self._refuse_unclaimed_slab(e, "kmem_cache_destroy", args)
        self._record("kmem_cache_destroy", args, e)
        result, refused = self._slab_call(e, GFP_KERNEL, lambda: self.iut.kmem_cache_destroy(cache))
        if result is not None:
            raise self._fail("IUT-RETURN-TYPE", f"kmem_cache_destroy returned {result!r}; it must return None")
        if refused or self.slab.caches[cache].live:
            if self._check_memory:
                self._verify_all_objects()  # a busy cache and its objects stay
            return
        self.slab.adopt_destroy(cache)

    def kmem_cache_shrink(self: Lockstep, cache: int) -> None:
        """kmem_cache_shrink(cache): give empty slabs back; sleeps."""
        if cache not in self.slab.caches:
            raise InvalidArgument(f"kmem_cache_shrink of cache {cache}, which is not live, is undefined")
        e = self.slab.expect_cache_shrink(cache, self.env.context)
        args = {"cache": self._cache_arg(cache)}
        self._refuse_unclaimed_slab(e, "kmem_cache_shrink", args)
        self._record("kmem_cache_shrink", args, e)
        self._slab_call(e, GFP_KERNEL, lambda: self.iut.kmem_cache_shrink(cache))
        if self.slab.exact and "SLAB-SHRINK-RELEASES" in self.claims:
            self.coverage["SLAB-SHRINK-RELEASES"] += 1
            self._checked(lambda: self.slab.check_shrunk(cache))
        if self._check_memory:
            self._verify_all_objects()

    # -- debug caches (capability slab_debug) --------------------------------------------------

    def kmem_cache_validate(self: Lockstep, cache: int) -> None:
        """kmem_cache_validate(cache): every overwritten poison or red zone byte is reported, then restored."""
        if cache not in self.slab.caches:
            raise InvalidArgument(f"kmem_cache_validate of cache {cache}, which is not live, is undefined")
        if in_atomic(self.env.context):
            raise InvalidArgument("validate_slab_cache runs in process context (sysfs, slub_kunit); the suite calls it only there")
        if self.slab.corrupt and cache not in self.slab.corrupt:
            raise InvalidArgument(f"a byte of cache {min(self.slab.corrupt)} was overwritten: validate that cache first")
        e = self.slab.expect_validate(cache)
        self._record("kmem_cache_validate", {"cache": self._cache_arg(cache)}, e)
        result, _ = self._slab_call(e, None, lambda: self.iut.kmem_cache_validate(cache))
        if result is not None:
            raise self._fail("IUT-RETURN-TYPE", f"kmem_cache_validate returned {result!r}; it must return None")
        for c in self.slab.corrupt.pop(cache, []):
            got = self._read(c.addr, 1)[0]
            if got != c.old:
                raise self._fail(c.rule_id, f"kmem_cache_validate reported the overwritten {c.describe()} but left it: it reads {got:#04x}, "
                                            f"it held {c.old:#04x}; SLUB restores the bytes it reports (restore_bytes)")
        if self._check_memory:
            self._verify_all_objects()  # restoring touched nothing the caller owns

    def clobber(self: Lockstep, addr: int) -> None:
        """Overwrite the byte at ``addr`` in a poison or red zone area, as slub_kunit does; the next step must validate its cache.

        Only validation judges a corruption (alloc and free would rewrite the
        byte, and SLUB's validate reports the first bad object of each slab),
        so one byte at a time, and nothing else until its cache is validated.
        """
        if not self._check_memory:
            raise InvalidArgument("clobber writes memory: the implementation needs the memory capability")
        if self.slab.corrupt:
            raise InvalidArgument(f"a byte of cache {min(self.slab.corrupt)} is already overwritten: kmem_cache_validate it first")
        step = Step("clobber", {"addr": addr})
        self.trace.append(step)  # before classifying: a missing red zone fails with this step shown
        try:
            c = self._checked_value(lambda: self.slab.classify_clobber(addr, self.claims))
        except InvalidArgument:
            self.trace.pop()  # refused: nothing was written
            raise
        name = self._obj_names.get(c.obj) or self._freed_obj_names.get(c.obj)
        if name is not None:
            step.args["addr"] = Ref(name, addr - c.obj)
        old = self._read(addr, 1)[0]
        self._memory_call(self.iut.write_phys, addr - self.machine.page_offset, bytes([old ^ 0xFF]))
        self.slab.corrupt.setdefault(c.cache, []).append(replace(c, old=old))

    def _check_poison(self: Lockstep, obj: LiveObject, what: str) -> None:
        """SLAB-POISON: the object reads POISON_FREE ... POISON_END (where claimed and memory is exposed)."""
        want = object_poison(obj.size)[-_ZERO_CHECK_LIMIT:]
        self.coverage["SLAB-POISON"] += 1
        got = self._read(obj.addr + obj.size - len(want), len(want))
        if got != want:
            off = obj.size - len(want) + next(i for i, (a, b) in enumerate(zip(got, want)) if a != b)
            raise self._fail("SLAB-POISON", f"{what}: byte {off} of the {obj.size}-byte object at {obj.addr:#x} (a SLAB_POISON cache) reads "
                                            f"{got[off - obj.size + len(want)]:#04x}, not {want[off - obj.size + len(want)]:#04x}: init_object fills it with "
                                            f"POISON_FREE (0x6b) and ends it with POISON_END (0xa5) on alloc and on free; keep the free pointer "
                                            f"outside the object, as calculate_sizes does for poisoned caches")

    def _poison_claimed(self: Lockstep) -> bool:
        return self._check_memory and "SLAB-POISON" in self.claims

    # -- shared ------------------------------------------------------------------------------

    def _slab_call(self: Lockstep, e: Expectation | None, gfp: int | None, fn: Callable[[], Any]) -> tuple[Any, bool]:
        """One implementation call, then, where it shows its slabs, their pages into the page model."""
        out = self._call(e, gfp, fn)
        if e is not None and e.outcome is Outcome.MUST_SUCCEED and e.rule_id == "SLAB-NO-SPURIOUS-FAIL" and self._binds(e.rule_id):
            self.coverage[e.rule_id] += 1
        if self.slab.exact:
            self.sync_slabs()
        return out

    def sync_slabs(self: Lockstep) -> None:
        """SLAB-INTROSPECT: the implementation's slabs() into the model, so page liveness stays exact."""
        raw, _ = self._call(None, None, self.iut.slabs)
        try:
            rows = [(int(c), int(p), int(o), int(u), int(t)) for c, p, o, u, t in raw]
        except (TypeError, ValueError):
            raise self._fail("IUT-RETURN-TYPE", f"slabs() returned {type(raw).__name__}; it must return a list of (cache, pfn, order, inuse, total)") from None
        self.coverage["SLAB-INTROSPECT"] += 1
        self._checked(lambda: self.slab.sync_slabs(rows, len(self.trace) - 1))

    def _free_slab_block(self: Lockstep, e: Expectation, op: str, args: dict[str, Any], pfn: int, call: Callable[[], Any]) -> None:
        """free_pages of a block the slab layer holds: a slab is a Bad page state; a large kmalloc block may be freed (SLAB-PAGE-BAD-FREE)."""
        self._refuse_unclaimed_slab(e, op, args)
        self._record(op, args, e)
        large = self.slab.large_object_at(pfn)
        result, refused = self._slab_call(e, None, call)
        if result is not None:
            raise self._fail("IUT-RETURN-TYPE", f"{op} returned {result!r}; it must return None")
        shown = pfn in self.slab.slab_blocks
        self.coverage["SLAB-INTROSPECT"] += 1
        if refused or e.report is not None:
            if not shown:
                raise self._fail("SLAB-INTROSPECT", f"{_call_text(op, args)} was reported and refused, yet the block at pfn {pfn:#x} is gone from slabs()")
            if self._check_memory:
                self._verify_all_objects()
            return
        if large is None:
            return
        if shown:
            raise self._fail("SLAB-INTROSPECT", f"{_call_text(op, args)} freed the large kmalloc block at pfn {pfn:#x} (nothing was reported), "
                                                "but slabs() still shows it: report the misuse and keep the block, or let the block go")
        self._drop_object(large.addr)

    def _refuse_unclaimed_slab(self: Lockstep, e: Expectation, op: str, args: dict[str, Any]) -> None:
        if e.fatal:
            self._refuse_unclaimed(e, _call_text(op, args))

    def _free_object(self: Lockstep, op: str, cid: int | None, addr: int, call: Callable[[], Any]) -> None:
        e = self.slab.expect_kfree(addr, cid=cid)
        args: dict[str, Any] = {"addr": self._obj_arg(addr)}
        if cid is not None:
            args = {"cache": self._cache_arg(cid), **args}
        self._refuse_unclaimed_slab(e, op, args)
        self._record(op, args, e)
        valid = e.report is None
        obj = self.slab.objects.get(addr) if valid else None
        if obj is not None:
            self._verify_object(obj)
        result, _ = self._slab_call(e, None, call)
        if result is not None:
            raise self._fail("IUT-RETURN-TYPE", f"{op} returned {result!r}; it must return None")
        if obj is not None:
            self._drop_object(addr)
            if self.slab.note_free(obj) is not None and self._poison_claimed() and self.slab.caches[obj.cache].poisoned:  # type: ignore[index]
                self._check_poison(replace(obj, size=self.slab.caches[obj.cache].object_size), f"after {op}({addr:#x})")  # type: ignore[index]
        elif valid:
            self.coverage["KFREE-NULL"] += 1
        elif self._check_memory:
            self._verify_all()
            self._verify_all_objects()

    def _place_object(self: Lockstep, what: str, addr: int, size: int, gfp: int, *, align: int, align_rule: str,
                      cid: int | None, write: bool = True) -> None:
        for rule in ("SLAB-LOWMEM", "SLAB-ZONE-ELIGIBLE", align_rule, "SLAB-NO-OVERLAP"):
            self.coverage[rule] += 1
        self._checked(lambda: self.slab.check_object(addr, size, gfp, align=align, align_rule=align_rule, what=what, cid=cid))
        obj = self.slab.adopt_object(addr, size, gfp, len(self.trace) - 1, cid=cid)
        if self._poison_claimed() and self.slab.expected_poison(cid, gfp) is not None:
            self._check_poison(obj, what)
        if self._check_memory:
            if gfp & _ZERO:
                self._verify_object_zero(obj, what)
            if write:
                self._write_object_pattern(obj)

    def _check_no_page_block(self: Lockstep, addr: int, size: int, what: str) -> None:
        first, last = self.machine.virt_to_pfn(addr), self.machine.virt_to_pfn(addr + size - 1)
        if first is None or last is None:
            return
        for pfn in range(first, last + 1):
            blk = self.model.live_block_at(pfn)
            if blk is not None and blk.pfn not in self.slab.slab_blocks:
                raise self._fail("SLAB-NO-OVERLAP", f"{what}: the object now reaches the live order-{blk.order} page block at pfn {blk.pfn:#x}")

    def _drop_object(self: Lockstep, addr: int) -> None:
        self.slab.adopt_free(addr)
        self._obj_patterns.pop(addr, None)
        self._obj_names.pop(addr, None)

    # -- names ----------------------------------------------------------------------------------

    def _bind_object(self: Lockstep, addr: int) -> str:
        name = f"obj_{self._seq['obj']}"
        self._seq["obj"] += 1
        self._values[name] = addr
        self._obj_names[addr] = name
        self._freed_obj_names[addr] = name
        return name

    def _bind_cache(self: Lockstep, cid: int) -> str:
        name = f"cache_{self._seq['cache']}"
        self._seq["cache"] += 1
        self._values[name] = cid
        self._cache_names[cid] = name
        return name

    def _obj_arg(self: Lockstep, addr: int) -> int | Ref:
        obj = self.slab.object_at(addr)
        if obj is not None and obj.addr in self._obj_names:
            return Ref(self._obj_names[obj.addr], addr - obj.addr)
        pfn = self.machine.virt_to_pfn(addr)
        blk = self.model.live_block_at(pfn) if pfn is not None else None
        if blk is not None and blk.pfn not in self.slab.slab_blocks:
            return self._addr_arg(addr)  # a page block now, whatever object lived there before
        if addr in self._freed_obj_names:
            return Ref(self._freed_obj_names[addr])
        return self._addr_arg(addr) if addr > ZERO_SIZE_PTR else addr

    def _cache_arg(self: Lockstep, cid: int) -> int | Ref:
        return Ref(self._cache_names[cid]) if cid in self._cache_names else cid

    # -- memory ---------------------------------------------------------------------------------

    def _read(self: Lockstep, addr: int, n: int) -> bytes:
        return bytes(self._memory_call(self.iut.read_phys, addr - self.machine.page_offset, n))

    def _object_sites(self: Lockstep, obj: LiveObject) -> list[tuple[int, int]]:
        head = min(_SITE, obj.size)
        sites = [(obj.addr, head)]
        if obj.size >= 2 * _SITE:
            sites.append((obj.addr + obj.size - _SITE, _SITE))
        return sites

    def _write_object_pattern(self: Lockstep, obj: LiveObject) -> None:
        if not self._check_memory:
            return
        seed = hashlib.blake2b(f"{obj.addr}:{obj.size}:{obj.step}".encode(), digest_size=2 * _SITE).digest()
        chunks = [seed[:n] if i == 0 else seed[_SITE:_SITE + n] for i, (_, n) in enumerate(self._object_sites(obj))]
        self._obj_patterns[obj.addr] = chunks
        for (site, _), chunk in zip(self._object_sites(obj), chunks):
            self._memory_call(self.iut.write_phys, site - self.machine.page_offset, chunk)

    def _verify_object(self: Lockstep, obj: LiveObject) -> None:
        chunks = self._obj_patterns.get(obj.addr)
        if not chunks or not self._check_memory:
            return
        self.coverage["SLAB-CONTENTS-INTACT"] += 1
        for (site, n), chunk in zip(self._object_sites(obj), chunks):
            got = self._read(site, n)
            if got != chunk:
                raise self._fail("SLAB-CONTENTS-INTACT", f"{obj.describe()} changed while live: at {site:#x} the caller wrote {chunk.hex()}, it now reads {got.hex()}")

    def _verify_all_objects(self: Lockstep) -> None:
        for addr in list(self._obj_patterns):
            obj = self.slab.objects.get(addr)
            if obj is not None:
                self._verify_object(obj)

    def _verify_object_zero(self: Lockstep, obj: LiveObject, what: str) -> None:
        self.coverage["KZALLOC-ZERO"] += 1
        n = min(obj.size, _ZERO_CHECK_LIMIT)
        data = self._read(obj.addr, n)
        if data != bytes(n):
            off = next(i for i, b in enumerate(data) if b)
            raise self._fail("KZALLOC-ZERO", f"{what} returned {obj.addr:#x} zeroed, but byte {off} reads {data[off]:#04x}")


def _call_text(op: str, args: dict[str, Any]) -> str:
    shown = (f"{k}={format_gfp(v)}" if k == "gfp" else f"{k}={v!r}" if isinstance(v, str) else f"{k}={v}" for k, v in args.items())
    return f"{op}({', '.join(shown)})"
