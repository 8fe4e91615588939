"""The rule catalog: every rule the suite checks, with its level and kernel source.

Rules are data (as the kernel keeps GFP_ZONE_TABLE as data): one ``Rule`` row
each, in ``RULES``. ``detection`` and ``policy`` rules are checked only for
implementations that list the rule ID in their ``claims``; ``safety``,
``liveness`` and ``protocol`` rules bind every implementation of the
subsystem. ``kmemspec rules`` prints this table; docs/rules.md is generated
from it (``render_markdown``) and a test keeps the two equal.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final


class Level(enum.Enum):
    """What kind of promise a rule is (DESIGN.md "Capabilities and levels")."""

    SAFETY = "safety"  # never overlap, never cross a zone, ...
    LIVENESS = "liveness"  # no spurious failure
    DETECTION = "detection"  # misuse reported, when claimed
    POLICY = "policy"  # kernel behaviour an allocator may choose differently, when claimed
    PROTOCOL = "protocol"  # the implementation speaks the protocol (returns ints, does not crash)

    @property
    def needs_claim(self) -> bool:
        return self in (Level.DETECTION, Level.POLICY)


@dataclass(frozen=True)
class Rule:
    """One rule: a stable ID, the subsystem, its level, a one-line statement, the kernel source."""

    id: str
    subsystem: str
    level: Level
    statement: str
    source: str
    claimable: bool = False

    @property
    def needs_claim(self) -> bool:
        """Checked only for implementations that list the rule in ``claims``."""
        return self.claimable or self.level.needs_claim


def _r(id: str, subsystem: str, level: Level, statement: str, source: str, *, claimable: bool = False) -> Rule:
    return Rule(id, subsystem, level, statement, source, claimable)


S, L, D, P, X = Level.SAFETY, Level.LIVENESS, Level.DETECTION, Level.POLICY, Level.PROTOCOL

RULES: Final[tuple[Rule, ...]] = (
    # -- page allocator: what a returned block must be ------------------------
    _r("BUDDY-ORDER-LIMIT", "pages", S, "alloc_pages with order > MAX_PAGE_ORDER returns NULL, even with __GFP_NOFAIL",
       "mm/page_alloc.c __alloc_frozen_pages_noprof (WARN_ON_ONCE_GFP, then NULL)"),
    _r("BUDDY-ALIGN", "pages", S, "a block of order k starts at a PFN that is a multiple of 2^k",
       "mm/page_alloc.c __free_one_page / expand; VM_BUG_ON_PAGE(pfn & ((1 << order) - 1))"),
    _r("PAGE-RAM-ONLY", "pages", S, "every page of a returned block is RAM handed to the buddy allocator: no hole, no reserved page, nothing beyond memory",
       "mm/memblock.c memblock_free_all / free_low_memory_core_early; mm/page_alloc.c __free_pages_core"),
    _r("BUDDY-NO-CROSS-ZONE", "pages", S, "a block lies within one zone; buddies merge only within a zone",
       "mm/internal.h page_is_buddy (page_zone_id match); include/linux/mmzone.h zone_spans_pfn"),
    _r("GFP-ZONE-ELIGIBLE", "pages", S, "a block comes from the zone gfp_zone() selects or a lower one, never a higher one",
       "include/linux/gfp.h gfp_zone / GFP_ZONE_TABLE; mm/page_alloc.c get_page_from_freelist; include/linux/mmzone.h next_zones_zonelist"),
    _r("BUDDY-NO-OVERLAP", "pages", S, "a returned block is free: it overlaps no live allocation",
       "mm/page_alloc.c __rmqueue_smallest / expand (only PageBuddy blocks are handed out)"),
    _r("API-LOWMEM-ADDRESS", "pages", S, "__get_free_pages returns the logical address page_address() of a lowmem block, never a highmem one (__GFP_HIGHMEM is stripped)",
       "mm/page_alloc.c get_free_pages_noprof; include/linux/mm.h lowmem_page_address"),
    _r("API-FREE-ADDR-NULL", "pages", S, "free_pages(0, order) does nothing",
       "mm/page_alloc.c free_pages (if (addr != 0))"),
    _r("API-ZERO", "pages", S, "a block allocated with __GFP_ZERO reads back as zero",
       "mm/page_alloc.c post_alloc_hook / kernel_init_pages; include/linux/mm.h want_init_on_alloc"),
    _r("PAGE-CONTENTS-INTACT", "pages", S, "the allocator never writes a live block: what the caller stored is there until it frees the block",
       "mm/page_alloc.c (only free pages are written: init_on_free, poisoning, free-list links)"),
    _r("CTX-NO-SLEEP", "context", S, "an allocator sleeps only for GFP flags that allow blocking (after might_sleep's report, even in atomic context, as the kernel does); freeing never sleeps",
       "include/linux/gfp.h gfpflags_allow_blocking; include/linux/sched/mm.h might_alloc; mm/page_alloc.c __free_pages (callable from IRQ context)"),
    _r("INTROSPECT-FREE-AREA", "pages", S, "the free blocks an implementation reports are aligned, disjoint, and cover exactly the free pages",
       "mm/page_alloc.c free_area[] / __free_one_page (every free page is in exactly one PageBuddy block)"),
    # -- page allocator: liveness ---------------------------------------------
    _r("BUDDY-NO-SPURIOUS-FAIL", "pages", L, "with every free page in the buddy lists (no per-CPU lists, high-atomic reserve or watermark boost held back), alloc_pages does not return NULL when an eligible zone has a free block of the order above its low watermark plus lowmem_reserve, or when __GFP_MEMALLOC lifts the watermarks",
       "mm/page_alloc.c get_page_from_freelist / __zone_watermark_ok (ALLOC_WMARK_LOW fast path), __gfp_pfmemalloc_flags", claimable=True),
    _r("NOFAIL-NEVER-NULL", "pages", L, "a blocking __GFP_NOFAIL allocation of order <= MAX_PAGE_ORDER does not return NULL while an eligible block is free (the kernel retries for ever; a model allocator must reach into its reserves)",
       "mm/page_alloc.c __alloc_pages_slowpath (nopage: retry for ever), __alloc_pages_may_oom (ALLOC_NO_WATERMARKS fallback)"),
    _r("WMARK-RESERVES-KEPT", "pages", P, "an allocation without __GFP_MEMALLOC or __GFP_NOFAIL takes a block from zone z only while free - (2^order - 1) > min + lowmem_reserve[gfp_zone], min halved for __GFP_HIGH and cut by a further quarter when the flags cannot block",
       "mm/page_alloc.c __zone_watermark_ok (ALLOC_MIN_RESERVE, ALLOC_NON_BLOCK), gfp_to_alloc_flags, setup_per_zone_lowmem_reserve"),
    # -- page allocator: detections (claimed) ---------------------------------
    _r("CTX-MIGHT-SLEEP", "context", D, "an allocation whose GFP flags allow blocking, made in atomic context, reports SleepInAtomic (and may then proceed)",
       "include/linux/sched/mm.h might_alloc -> might_sleep_if; kernel/sched/core.c __might_resched (DEBUG_ATOMIC_SLEEP)"),
    _r("GFP-ZONE-BAD", "pages", D, "a GFP mask with more than one of __GFP_DMA, __GFP_DMA32, __GFP_HIGHMEM reports InvalidGfp",
       "include/linux/gfp.h gfp_zone (GFP_ZONE_BAD, VM_BUG_ON under DEBUG_VM)"),
    _r("BUDDY-DOUBLE-FREE", "pages", D, "freeing pages that are already free reports DoubleFree and changes nothing",
       "include/linux/mm.h put_page_testzero (VM_BUG_ON_PAGE refcount == 0, DEBUG_VM)"),
    _r("BUDDY-BAD-FREE", "pages", D, "freeing a reserved PFN, or a hole PFN that has a struct page, reports BadFree and changes nothing",
       "mm/page_alloc.c free_pages_prepare / free_page_is_bad / bad_page (\"PAGE_FLAGS_CHECK_AT_FREE flag(s) set\", check_pages_enabled)"),
    _r("BUDDY-FREE-WRONG-ORDER", "pages", D, "freeing a live compound (__GFP_COMP) block with another order than it was allocated with reports FreeWrongOrder and changes nothing (for a non-compound block the kernel does not check: undefined)",
       "mm/page_alloc.c free_pages_prepare (VM_BUG_ON_PAGE(compound && compound_order(page) != order))"),
    _r("BUDDY-FREE-INTERIOR", "pages", D, "freeing a PFN inside a live block that is not its first page reports FreeInterior and changes nothing",
       "include/linux/mm.h put_page_testzero (VM_BUG_ON_PAGE: a tail page has refcount 0)"),
    _r("API-FREE-BAD-ADDRESS", "pages", D, "free_pages of an address for which virt_addr_valid() fails (below PAGE_OFFSET, or no struct page behind it) reports BadAddress and changes nothing",
       "mm/page_alloc.c free_pages (VM_BUG_ON(!virt_addr_valid(addr))); arch/x86/mm/physaddr.c __virt_addr_valid"),
    # -- kmalloc and the slab layer: what an object must be ---------------------
    _r("KMALLOC-ZERO-SIZE", "kmalloc", S, "kmalloc(0) (and a kmalloc_array or krealloc of 0 bytes) returns ZERO_SIZE_PTR, 16, and reports nothing",
       "include/linux/slab.h ZERO_SIZE_PTR; mm/slub.c __do_kmalloc_node (before slab_pre_alloc_hook)"),
    _r("KFREE-NULL", "kmalloc", S, "kfree(NULL) and kfree(ZERO_SIZE_PTR) do nothing; ksize() of either is 0",
       "mm/slub.c kfree, ksize (ZERO_OR_NULL_PTR)"),
    _r("KMALLOC-MAX-SIZE", "kmalloc", S, "kmalloc above KMALLOC_MAX_SIZE (1 << (MAX_PAGE_ORDER + PAGE_SHIFT)) returns NULL",
       "include/linux/slab.h KMALLOC_MAX_SIZE; mm/page_alloc.c __alloc_frozen_pages_noprof (order > MAX_PAGE_ORDER)"),
    _r("KMALLOC-ARRAY-OVERFLOW", "kmalloc", S, "kmalloc_array(n, size) whose product overflows size_t returns NULL and allocates nothing",
       "include/linux/slab.h kmalloc_array_noprof (check_mul_overflow)"),
    _r("KMALLOC-ALIGN", "kmalloc", S, "a kmalloc object is aligned to ARCH_KMALLOC_MINALIGN (8) and to the largest power of two dividing its size (a power-of-two size to itself)",
       "include/linux/slab.h kmalloc kernel-doc; mm/slab_common.c create_boot_cache (kmalloc caches' align)"),
    _r("KSIZE-COVERS", "kmalloc", S, "ksize(p) is at least the size asked for, and the bytes up to it belong to p alone",
       "mm/slub.c __ksize / ksize; include/linux/slab.h kmalloc_size_roundup kernel-doc"),
    _r("KMALLOC-SIZE-CLASS", "kmalloc", P, "ksize(kmalloc(size)) is the kernel's bucket: 8, 16, 32, 64, 96, 128, 192, 256 ... KMALLOC_MAX_CACHE_SIZE (2 * PAGE_SIZE), then PAGE_SIZE << get_order(size)",
       "mm/slab_common.c kmalloc_size_roundup, kmalloc_size_index[]; include/linux/slab.h __kmalloc_index"),
    _r("KZALLOC-ZERO", "kmalloc", S, "kzalloc, and kmalloc or kmem_cache_alloc with __GFP_ZERO, return an object that reads zero over the size asked for",
       "include/linux/slab.h kzalloc; mm/slub.c slab_post_alloc_hook (init), ___kmalloc_large_node (__GFP_ZERO to the page allocator)"),
    _r("KREALLOC", "kmalloc", S, "krealloc keeps the old contents up to the smaller size; krealloc(NULL, n) allocates; krealloc(p, 0) frees p and returns ZERO_SIZE_PTR; on failure p stays live",
       "mm/slab_common.c krealloc_noprof / __do_krealloc"),
    _r("SLAB-LOWMEM", "slab", S, "every object is a lowmem logical address inside free RAM (no hole, no reserved page), also when __GFP_HIGHMEM was asked",
       "mm/slub.c allocate_slab (slab_address of lowmem pages), kmalloc_fix_flags; mm/slab_common.c"),
    _r("SLAB-ZONE-ELIGIBLE", "slab", S, "an object of GFP_DMA kmalloc or of a SLAB_CACHE_DMA cache lies in ZONE_DMA (SLAB_CACHE_DMA32: ZONE_DMA32 or below)",
       "include/linux/slab.h kmalloc_type (KMALLOC_DMA); mm/slub.c calculate_sizes (s->allocflags)"),
    _r("SLAB-CACHE-ALIGN", "slab", S, "a kmem_cache_alloc object is aligned as calculate_alignment() says: the align asked for, SLAB_HWCACHE_ALIGN's cache line (halved while the object fits in half), at least 8",
       "mm/slab_common.c calculate_alignment; include/linux/slab.h ARCH_SLAB_MINALIGN"),
    _r("SLAB-NO-OVERLAP", "slab", S, "an object overlaps no live object and no live page block; a page block alloc_pages returns holds no live object",
       "mm/slub.c (an object is on the freelist or allocated, never both); mm/page_alloc.c"),
    _r("SLAB-CONTENTS-INTACT", "slab", S, "the slab layer never writes a live object: what the caller stored is there until it frees the object",
       "mm/slub.c (free pointers and poison are written only into free objects)"),
    _r("SLAB-INTROSPECT", "slab", S, "the slabs an implementation shows are page blocks it could take from free lowmem RAM, each reported once, and every object lies in a slab of its cache (a kmalloc cache or a large kmalloc block for kmalloc objects)",
       "mm/slub.c allocate_slab / discard_slab (slab pages come from and go back to the page allocator); /sys/kernel/slab/*/slabs"),
    _r("SLAB-PARTIAL-FIRST", "slab", P, "kmem_cache_alloc takes an object from a partial slab if the cache has one, else from an empty slab if it has one, and only then from a new slab",
       "mm/slab.c get_first_slab / cache_grow (the removed SLAB allocator); SLUB (mm/slub.c ___slab_alloc) may take an empty slab first"),
    _r("SLAB-SHRINK-RELEASES", "slab", P, "after kmem_cache_shrink the cache holds no empty slab: they went back to the page allocator",
       "mm/slub.c __kmem_cache_do_shrink (discard_slab of every empty slab, whatever min_partial says)"),
    _r("SLAB-NO-SPURIOUS-FAIL", "slab", L, "with slabs() showing every slab page, kmalloc and kmem_cache_alloc (a cache without debug flags) do not return NULL when the page allocator must supply what a new slab takes (get_order of the object stride, the caller's reclaim flags) or a large kmalloc takes (get_order(size)), as BUDDY-NO-SPURIOUS-FAIL (where claimed) and NOFAIL-NEVER-NULL say",
       "mm/slub.c allocate_slab (fallback to oo_order(s->min)), new_slab (GFP_RECLAIM_MASK | GFP_CONSTRAINT_MASK), ___kmalloc_large_node; mm/page_alloc.c get_page_from_freelist", claimable=True),
    _r("SLAB-POISON", "slab", P, "in a SLAB_POISON cache (not SLAB_TYPESAFE_BY_RCU) a new object without __GFP_ZERO, and a free object while its slab stays, read POISON_FREE (0x6b) bytes ending in POISON_END (0xa5) (no constructor, no KFENCE object, as slub_kunit arranges)",
       "mm/slub.c init_object (on free and again on alloc), calculate_sizes (__OBJECT_POISON; the free pointer moves out of the object); include/linux/poison.h; mm/slab.h slab_want_init_on_alloc"),
    # -- kmalloc and the slab layer: misuse (claimed) --------------------------
    _r("KMALLOC-GFP-BUG", "kmalloc", D, "kmalloc with __GFP_HIGHMEM or __GFP_DMA32 reports UnexpectedGfp every time (unclaimed, the report is allowed, not required: the kernel warns only when it needs a new slab) and still returns lowmem",
       "mm/slab_common.c kmalloc_fix_flags (\"Unexpected gfp\"); mm/slub.c new_slab, ___kmalloc_large_node; mm/internal.h GFP_SLAB_BUG_MASK"),
    _r("SLAB-DOUBLE-FREE", "slab", D, "kfree or kmem_cache_free of an object already freed reports DoubleFree (InvalidFree once its slab is gone) and changes nothing",
       "mm/slub.c free_consistency_checks (\"Object already free\", SLAB_CONSISTENCY_CHECKS)"),
    _r("SLAB-INVALID-FREE", "slab", D, "kfree of a pointer into a live object, or into a page block from the page allocator, reports InvalidFree and changes nothing",
       "mm/slub.c free_consistency_checks (\"Invalid object pointer\"), free_large_kmalloc (\"Not a kmalloc allocation\", mainline after 6.12)"),
    _r("SLAB-WRONG-CACHE", "slab", D, "kmem_cache_free(s, x) of an object of another cache reports WrongCache and changes nothing",
       "mm/slub.c cache_from_obj / warn_free_bad_obj (SLAB_FREELIST_HARDENED or SLAB_CONSISTENCY_CHECKS)"),
    _r("SLAB-DESTROY-BUSY", "slab", D, "kmem_cache_destroy of a cache with live objects reports CacheBusy; the cache and its objects stay intact",
       "mm/slub.c __kmem_cache_shutdown (\"Objects remaining\"); mm/slab_common.c kmem_cache_destroy (\"Slab cache still has objects\")"),
    _r("SLAB-CACHE-MIGHT-SLEEP", "slab", D, "kmem_cache_create, kmem_cache_destroy and kmem_cache_shrink in atomic context report SleepInAtomic (they take slab_mutex)",
       "mm/slab_common.c __kmem_cache_create_args, kmem_cache_destroy, kmem_cache_shrink (mutex_lock, cpus_read_lock)"),
    _r("SLAB-POISON-CHECK", "slab", D, "a byte overwritten in a free object of a SLAB_POISON cache is reported as SlabCorruption by the next kmem_cache_validate, which restores the poison (a second validate reports nothing; no KASAN or KFENCE object, as slub_kunit arranges)",
       "mm/slub.c validate_slab_cache / check_object (\"Poison overwritten\") / restore_bytes; lib/slub_kunit.c test_first_word, test_clobber_50th_byte"),
    _r("SLAB-REDZONE-CHECK", "slab", D, "a byte overwritten just before or just after an object of a SLAB_RED_ZONE cache (its left or right red zone; a live object in a slab validate visits: not full, or SLAB_STORE_USER) is reported as SlabCorruption by kmem_cache_validate, which restores it (no KFENCE object, as slub_kunit arranges)",
       "mm/slub.c calculate_sizes (red_left_pad; right red zone 1..8 bytes), check_object (\"Left/Right Redzone overwritten\"), validate_slab_node (full slabs only with SLAB_STORE_USER); lib/slub_kunit.c test_clobber_zone, test_clobber_redzone_free"),
    _r("SLAB-PAGE-BAD-FREE", "slab", D, "free_pages of a page block the slab layer holds as a slab reports BadFree (\"Bad page state\") and, by the suite's rule for a raised misuse, changes nothing (the kernel leaks the page); a large kmalloc block may be freed, or reported and kept",
       "mm/page_alloc.c free_pages_prepare / free_page_is_bad / page_bad_reason (\"nonzero mapcount\": PGTY_slab; check_pages_enabled); mm/slub.c free_large_kmalloc"),
    # -- the implementation protocol -------------------------------------------
    _r("IUT-NO-CRASH", "protocol", X, "an implementation raises nothing but the Violation types of refmodel.errors",
       "DESIGN.md \"The implementation protocol\""),
    _r("IUT-RETURN-TYPE", "protocol", X, "an implementation returns what the protocol says: an int or None from allocations, None from frees",
       "DESIGN.md \"The implementation protocol\""),
    _r("IUT-NO-FALSE-REPORT", "protocol", X, "an implementation reports a violation only for a misuse, and then exactly the kind the kernel reports",
       "DESIGN.md \"Misuse is part of the suite\""),
    # -- implementations in another process (exec:, --isolate) -----------------
    _r("IUT-PROCESS-ALIVE", "protocol", X, "an implementation process neither exits nor is killed by a signal (SIGSEGV, SIGABRT, ...) while the suite runs",
       "docs/protocol.md \"What the suite does with a misbehaving process\""),
    _r("IUT-TIMEOUT", "protocol", X, "an implementation process answers every request within the per-operation timeout (--timeout)",
       "docs/protocol.md \"What the suite does with a misbehaving process\""),
    _r("IUT-WIRE-FORMAT", "protocol", X, "an implementation process answers each request with exactly one line of JSON of the protocol's shape (at most 16 MiB), naming only known violations",
       "docs/protocol.md \"Any language, out of process\"; docs/protocol.schema.json"),
)

#: Rules that only an implementation in a child process can break.
PROCESS_RULES: Final[frozenset[str]] = frozenset({"IUT-PROCESS-ALIVE", "IUT-TIMEOUT", "IUT-WIRE-FORMAT"})

RULES_BY_ID: Final[dict[str, Rule]] = {r.id: r for r in RULES}
CLAIMABLE: Final[frozenset[str]] = frozenset(r.id for r in RULES if r.needs_claim)


def rule(rule_id: str) -> Rule:
    """The rule with this ID; KeyError names the known prefixes."""
    try:
        return RULES_BY_ID[rule_id]
    except KeyError:
        raise KeyError(f"no rule {rule_id!r}; `kmemspec rules` lists them") from None


def render_table(rules: tuple[Rule, ...] = RULES) -> str:
    """The catalog as ``kmemspec rules`` prints it."""
    width = max(len(r.id) for r in rules)
    lines = []
    for r in rules:
        lines.append(f"{r.id:<{width}}  {r.level.value:<9}  {r.subsystem:<8}  {r.statement}")
        lines.append(f"{'':<{width}}  {'':<9}  {'':<8}  source: {r.source}")
    return "\n".join(lines)


def render_markdown(rules: tuple[Rule, ...] = RULES) -> str:
    """docs/rules.md, generated. ``kmemspec rules --markdown > docs/rules.md`` rewrites it."""
    out = [
        "# Rule catalog",
        "",
        "Generated by `kmemspec rules --markdown` from `refmodel/rules.py`; a test fails when this file",
        "and the catalog differ. `detection` and `policy` rules bind only implementations that claim them.",
        "",
        "| rule | level | subsystem | statement | kernel source |",
        "|---|---|---|---|---|",
    ]
    for r in rules:
        out.append(f"| `{r.id}` | {r.level.value} | {r.subsystem} | {r.statement} | {r.source} |")
    return "\n".join(out) + "\n"
