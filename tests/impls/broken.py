"""Deliberately broken implementations, one protocol slip each, for the harness's own tests.

Each wraps ``reference`` and breaks one thing; none is a realistic allocator bug
(those are the mutants of ``fast``), they test what the harness does with a
crash, a wrong return type, a false report, a sleep, a missing method.
"""

from kmemspec.harness.impls.reference import ReferenceAllocator
from kmemspec.refmodel.errors import DoubleFree


class _Crash(ReferenceAllocator):
    def alloc_pages(self, gfp, order):
        if order == 1:
            raise ZeroDivisionError("division by zero in my_buddy.c:42")
        return super().alloc_pages(gfp, order)


class _CrashSixthKfreeNull(ReferenceAllocator):
    """Counts kfree(NULL) calls and crashes on the sixth: a counterexample of six identical steps."""

    def __init__(self, machine, env):
        super().__init__(machine, env)
        self._null_frees = 0

    def kfree(self, addr):
        if addr == 0:
            self._null_frees += 1
            if self._null_frees == 6:
                raise RuntimeError("kfree(NULL) counter overflowed")
        super().kfree(addr)


class _Str(ReferenceAllocator):
    def alloc_pages(self, gfp, order):
        pfn = super().alloc_pages(gfp, order)
        return None if pfn is None else str(pfn)


class _FalseReport(ReferenceAllocator):
    def free_pages(self, pfn, order):
        if order == 0:
            raise DoubleFree("pfn looks free to me")
        super().free_pages(pfn, order)


class _Sleeps(ReferenceAllocator):
    def free_pages(self, pfn, order):
        self.env.sleep()
        super().free_pages(pfn, order)


class _NoFree:
    capabilities = frozenset({"pages"})
    claims = frozenset()

    def alloc_pages(self, gfp, order):
        return None


def make_crash(machine, env):
    return _Crash(machine, env)


def make_crash_sixth_kfree_null(machine, env):
    return _CrashSixthKfreeNull(machine, env)


def make_str(machine, env):
    return _Str(machine, env)


def make_false_report(machine, env):
    return _FalseReport(machine, env)


def make_sleeps(machine, env):
    return _Sleeps(machine, env)


def make_no_free(machine, env):
    return _NoFree()


def make_raises(machine, env):
    raise RuntimeError("cannot open /dev/mem")


def make_bad_claim(machine, env):
    obj = ReferenceAllocator(machine, env)
    obj.claims = frozenset({"BUDDY-DOUBLE-FREEE"})
    return obj


def make_unclaiming(machine, env):
    obj = ReferenceAllocator(machine, env)
    obj.claims = frozenset()
    return obj
