"""Violations an implementation reports, and the failures the suite reports.

Two families, kept apart:

* ``Violation`` and its subclasses are what an implementation under test
  raises (or passes to ``env.report``) when it detects a caller's misuse, as
  the kernel's debug options do (DEBUG_VM's VM_BUG_ON, DEBUG_ATOMIC_SLEEP's
  might_sleep splat). Each carries a stable integer ``code`` so that C and
  out-of-process adapters map their error codes one to one onto these types.
* ``ConformanceFailure`` is the suite's verdict against an implementation:
  a rule ID and a message in kernel terms.

``KmemspecError`` is the root of the tool's own usage errors (a bad machine
file, a wrong implementation path).
"""

from __future__ import annotations

from typing import Any, ClassVar


class Violation(Exception):
    """A misuse detected by the implementation under test. Subclasses name the kind.

    ``fatal`` kinds are the kernel's BUG or bad_page class: the call stops, so
    raising one refuses the call and nothing changes. The others are a WARN,
    after which the kernel goes on.
    """

    code: ClassVar[int] = 0
    fatal: ClassVar[bool] = True

    @classmethod
    def kind(cls) -> str:
        return cls.__name__


class SleepInAtomic(Violation):
    """A blocking call (GFP flags with __GFP_DIRECT_RECLAIM) from atomic context.

    "BUG: sleeping function called from invalid context" (kernel/sched/core.c
    __might_resched, CONFIG_DEBUG_ATOMIC_SLEEP).
    """

    code = 1
    fatal = False


class InvalidGfp(Violation):
    """A GFP zone-modifier combination in GFP_ZONE_BAD (include/linux/gfp.h gfp_zone, VM_BUG_ON)."""

    code = 2


class DoubleFree(Violation):
    """Freeing pages that are already free (include/linux/mm.h put_page_testzero, VM_BUG_ON_PAGE refcount 0).

    The allocator cannot tell a second free from a free of a page that was
    never handed out: both find refcount 0. The model uses this kind for both.
    """

    code = 3


class BadFree(Violation):
    """Freeing a PFN that is not allocatable RAM: a hole, a reserved range, beyond memory.

    mm/page_alloc.c free_pages_prepare / bad_page ("PAGE_FLAGS_CHECK_AT_FREE
    flag(s) set" for PageReserved); pfn_valid() false for holes.
    """

    code = 4


class FreeWrongOrder(Violation):
    """Freeing a live block with an order other than the one it was allocated with.

    mm/page_alloc.c free_pages_prepare: VM_BUG_ON_PAGE(compound && compound_order != order).
    """

    code = 5


class FreeInterior(Violation):
    """Freeing a PFN inside a live block that is not its first page (a tail page, refcount 0).

    include/linux/mm.h put_page_testzero VM_BUG_ON_PAGE; mm/page_alloc.c
    __free_one_page VM_BUG_ON_PAGE(pfn & ((1 << order) - 1)).
    """

    code = 6


class BadAddress(Violation):
    """free_pages() of an address that is not a valid lowmem logical address.

    mm/page_alloc.c free_pages: VM_BUG_ON(!virt_addr_valid(addr)).
    """

    code = 7


class InvalidFree(Violation):
    """kfree()/kmem_cache_free() of a pointer that is no live object's start: an interior pointer, a page block.

    mm/slub.c free_consistency_checks "Invalid object pointer" (SLAB_CONSISTENCY_CHECKS);
    free_large_kmalloc "Not a kmalloc allocation" for a non-slab page.
    """

    code = 8


class WrongCache(Violation):
    """kmem_cache_free(s, x) where x belongs to another cache.

    mm/slub.c cache_from_obj / warn_free_bad_obj "object belongs to different cache"
    (CONFIG_SLAB_FREELIST_HARDENED or SLAB_CONSISTENCY_CHECKS).
    """

    code = 9


class CacheBusy(Violation):
    """kmem_cache_destroy() of a cache that still has live objects.

    mm/slub.c __kmem_cache_shutdown "Objects remaining on __kmem_cache_shutdown()";
    mm/slab_common.c kmem_cache_destroy "Slab cache still has objects". Reported, not fatal.
    """

    code = 10
    fatal = False


class UnexpectedGfp(Violation):
    """kmalloc with __GFP_DMA32 or __GFP_HIGHMEM (GFP_SLAB_BUG_MASK).

    mm/slab_common.c kmalloc_fix_flags "Unexpected gfp: ... Fix your code!": the
    flags are fixed up and the allocation goes on, from lowmem.
    """

    code = 11
    fatal = False


class SlabCorruption(Violation):
    """kmem_cache_validate() found an overwritten poison or red zone byte, and restored it.

    mm/slub.c check_bytes_and_report ("Poison overwritten", "Right Redzone
    overwritten", ...), object_err "Object corrupt", restore_bytes. Reported, not fatal.
    """

    code = 12
    fatal = False


VIOLATIONS: tuple[type[Violation], ...] = (
    SleepInAtomic,
    InvalidGfp,
    DoubleFree,
    BadFree,
    FreeWrongOrder,
    FreeInterior,
    BadAddress,
    InvalidFree,
    WrongCache,
    CacheBusy,
    UnexpectedGfp,
    SlabCorruption,
)
VIOLATION_BY_CODE: dict[int, type[Violation]] = {v.code: v for v in VIOLATIONS}
VIOLATION_BY_NAME: dict[str, type[Violation]] = {v.__name__: v for v in VIOLATIONS}


class ConformanceFailure(AssertionError):
    """The suite's verdict: the implementation broke rule ``rule_id``.

    ``steps`` is filled in by the driver with the operations that led here.
    Each rule ID gets its own subclass (``failure_for``) so that Hypothesis
    shrinks and reports distinct rules as distinct bugs.
    """

    rule_id: str = ""

    def __init__(self, rule_id: str, message: str) -> None:
        super().__init__(f"{rule_id}: {message}")
        self.rule_id = rule_id
        self.message = message
        self.steps: list[Any] = []


_FAILURE_CLASSES: dict[str, type[ConformanceFailure]] = {}


def failure_for(rule_id: str, message: str) -> ConformanceFailure:
    """A ConformanceFailure of the class reserved for ``rule_id``."""
    cls = _FAILURE_CLASSES.get(rule_id)
    if cls is None:
        name = "Failure_" + rule_id.replace("-", "_")
        cls = type(name, (ConformanceFailure,), {"rule_id": rule_id, "__module__": __name__})
        _FAILURE_CLASSES[rule_id] = cls
    return cls(rule_id, message)


class KmemspecError(Exception):
    """Root of kmemspec's own usage errors; the CLI prints the message on one line and exits 2."""


class InvalidMachine(KmemspecError, ValueError):
    """A machine description that breaks a rule of the machine format (names the field)."""


class InvalidDefinition(KmemspecError, TypeError):
    """An implementation or adapter that does not provide what it declares."""


class InvalidArgument(KmemspecError, TypeError):
    """A call with arguments outside what the API accepts."""
