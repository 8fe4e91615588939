/* SPDX-License-Identifier: MIT */
/*
 * kmemspec_iut.h - the C ABI an allocator implements to be checked by kmemspec.
 *
 * ABI version 1. Build a shared library that exports the functions below and
 * run
 *
 *     cc -shared -fPIC -I"$(kmemspec include-dir)" -o liballoc.so alloc.c
 *     kmemspec check c:./liballoc.so              # in process (ctypes)
 *     kmemspec check c:./liballoc.so --isolate    # in a child process
 *
 * Only integers cross the boundary: PFNs, physical and logical addresses,
 * orders, GFP bits (the kernel's values, include/linux/gfp_types.h) and
 * preempt_count values. The suite creates a fresh instance for every
 * generated example, so keep all state in the instance, none in globals.
 *
 * Every operation returns an int status: KMEMSPEC_OK, KMEMSPEC_NOMEM for an
 * allocation that fails (the kernel's NULL), or the positive code of the
 * misuse the allocator detected. Codes map one to one onto the violations of
 * kmemspec.refmodel.errors (Violation.code); a test keeps them equal. A
 * detected misuse changes nothing. Any other value is a conformance failure
 * (IUT-WIRE-FORMAT).
 *
 * Capabilities group the functions: "pages" is required, the others are
 * optional and add checks (docs/protocol.md says which). Claims are the rule
 * IDs of the detection and policy rules the allocator promises
 * (`kmemspec rules`); misuse is generated only for claimed detections.
 * Later subsystems (slab, kmalloc, vmalloc, ...) extend this header the same
 * way: a capability, its functions, its violation codes.
 */
#ifndef KMEMSPEC_IUT_H
#define KMEMSPEC_IUT_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define KMEMSPEC_ABI_VERSION 1

typedef uint32_t kmemspec_gfp_t;

/* -- status codes ---------------------------------------------------------- */

enum kmemspec_status {
	KMEMSPEC_OK = 0,
	KMEMSPEC_NOMEM = -1,			/* allocation failed: NULL / 0 */
	KMEMSPEC_E_SLEEP_IN_ATOMIC = 1,		/* SleepInAtomic   CTX-MIGHT-SLEEP */
	KMEMSPEC_E_INVALID_GFP = 2,		/* InvalidGfp      GFP-ZONE-BAD */
	KMEMSPEC_E_DOUBLE_FREE = 3,		/* DoubleFree      BUDDY-DOUBLE-FREE */
	KMEMSPEC_E_BAD_FREE = 4,		/* BadFree         BUDDY-BAD-FREE */
	KMEMSPEC_E_FREE_WRONG_ORDER = 5,	/* FreeWrongOrder  BUDDY-FREE-WRONG-ORDER */
	KMEMSPEC_E_FREE_INTERIOR = 6,		/* FreeInterior    BUDDY-FREE-INTERIOR */
	KMEMSPEC_E_BAD_ADDRESS = 7,		/* BadAddress      API-FREE-BAD-ADDRESS */
	/* the slab layer and kmalloc (capabilities "slab", "kmalloc") */
	KMEMSPEC_E_INVALID_FREE = 8,		/* InvalidFree     SLAB-INVALID-FREE */
	KMEMSPEC_E_WRONG_CACHE = 9,		/* WrongCache      SLAB-WRONG-CACHE */
	KMEMSPEC_E_CACHE_BUSY = 10,		/* CacheBusy       SLAB-DESTROY-BUSY */
	KMEMSPEC_E_UNEXPECTED_GFP = 11,		/* UnexpectedGfp   KMALLOC-GFP-BUG */
	KMEMSPEC_E_SLAB_CORRUPTION = 12,	/* SlabCorruption  SLAB-POISON-CHECK, SLAB-REDZONE-CHECK */
};

/* -- GFP bits (include/linux/gfp_types.h) ----------------------------------- */

#define KMEMSPEC___GFP_DMA		0x01u
#define KMEMSPEC___GFP_HIGHMEM		0x02u
#define KMEMSPEC___GFP_DMA32		0x04u
#define KMEMSPEC___GFP_MOVABLE		0x08u
#define KMEMSPEC___GFP_RECLAIMABLE	0x10u
#define KMEMSPEC___GFP_HIGH		0x20u
#define KMEMSPEC___GFP_IO		0x40u
#define KMEMSPEC___GFP_FS		0x80u
#define KMEMSPEC___GFP_ZERO		0x100u
#define KMEMSPEC___GFP_DIRECT_RECLAIM	0x400u
#define KMEMSPEC___GFP_KSWAPD_RECLAIM	0x800u
#define KMEMSPEC___GFP_WRITE		0x1000u
#define KMEMSPEC___GFP_NOWARN		0x2000u
#define KMEMSPEC___GFP_RETRY_MAYFAIL	0x4000u
#define KMEMSPEC___GFP_NOFAIL		0x8000u
#define KMEMSPEC___GFP_NORETRY		0x10000u
#define KMEMSPEC___GFP_MEMALLOC		0x20000u
#define KMEMSPEC___GFP_COMP		0x40000u
#define KMEMSPEC___GFP_NOMEMALLOC	0x80000u
#define KMEMSPEC___GFP_HARDWALL		0x100000u
#define KMEMSPEC___GFP_THISNODE		0x200000u
#define KMEMSPEC___GFP_ACCOUNT		0x400000u
#define KMEMSPEC___GFP_ZEROTAGS		0x800000u

#define KMEMSPEC_GFP_ZONEMASK	(KMEMSPEC___GFP_DMA | KMEMSPEC___GFP_HIGHMEM | \
				 KMEMSPEC___GFP_DMA32 | KMEMSPEC___GFP_MOVABLE)
#define KMEMSPEC___GFP_RECLAIM	(KMEMSPEC___GFP_DIRECT_RECLAIM | KMEMSPEC___GFP_KSWAPD_RECLAIM)
#define KMEMSPEC_GFP_ATOMIC	(KMEMSPEC___GFP_HIGH | KMEMSPEC___GFP_KSWAPD_RECLAIM)
#define KMEMSPEC_GFP_KERNEL	(KMEMSPEC___GFP_RECLAIM | KMEMSPEC___GFP_IO | KMEMSPEC___GFP_FS)
#define KMEMSPEC_GFP_NOWAIT	(KMEMSPEC___GFP_KSWAPD_RECLAIM | KMEMSPEC___GFP_NOWARN)

/* -- the slab layer (include/linux/slab.h) ---------------------------------- */

#define KMEMSPEC_ZERO_SIZE_PTR		16u	/* kmalloc(0); kfree() and ksize() of it do nothing */

/* kmem_cache_create() flags, with the values they had before the kernel made them config-dependent. */
#define KMEMSPEC_SLAB_CONSISTENCY_CHECKS	0x100u
#define KMEMSPEC_SLAB_RED_ZONE		0x400u
#define KMEMSPEC_SLAB_POISON		0x800u
#define KMEMSPEC_SLAB_HWCACHE_ALIGN	0x2000u
#define KMEMSPEC_SLAB_CACHE_DMA		0x4000u
#define KMEMSPEC_SLAB_CACHE_DMA32	0x8000u
#define KMEMSPEC_SLAB_STORE_USER	0x10000u
#define KMEMSPEC_SLAB_RECLAIM_ACCOUNT	0x20000u
#define KMEMSPEC_SLAB_PANIC		0x40000u
#define KMEMSPEC_SLAB_TYPESAFE_BY_RCU	0x80000u
#define KMEMSPEC_SLAB_NO_MERGE		0x1000000u
#define KMEMSPEC_SLAB_ACCOUNT		0x4000000u

/* -- the machine ------------------------------------------------------------ */

/* enum zone_type (include/linux/mmzone.h), fixed numbering. */
enum kmemspec_zone_type {
	KMEMSPEC_ZONE_DMA = 0,
	KMEMSPEC_ZONE_DMA32 = 1,
	KMEMSPEC_ZONE_NORMAL = 2,
	KMEMSPEC_ZONE_HIGHMEM = 3,
	KMEMSPEC_ZONE_MOVABLE = 4,
	KMEMSPEC_NR_ZONE_TYPES = 5,
};

struct kmemspec_range {
	uint64_t start_pfn;		/* first PFN */
	uint64_t end_pfn;		/* one past the last */
};

struct kmemspec_zone {
	uint32_t zone_type;		/* enum kmemspec_zone_type */
	uint32_t reserved0;
	uint64_t start_pfn;		/* the span, holes included (zone_spans_pfn) */
	uint64_t end_pfn;
	uint64_t watermark_min;		/* pages (__setup_per_zone_wmarks) */
	uint64_t watermark_low;
	uint64_t watermark_high;
	/* lowmem_reserve[z]: the margin a request whose highest zone is z must leave here */
	uint64_t lowmem_reserve[KMEMSPEC_NR_ZONE_TYPES];
};

struct kmemspec_machine {
	uint32_t abi_version;		/* KMEMSPEC_ABI_VERSION */
	uint32_t page_shift;		/* 12: PAGE_SIZE 4096 */
	uint32_t max_page_order;	/* MAX_PAGE_ORDER, inclusive */
	uint32_t nr_zones;
	const struct kmemspec_zone *zones;	/* configured zones, lowest first (may be empty) */
	uint64_t page_offset;		/* logical address of PFN 0: addr = page_offset + (pfn << page_shift) */
	uint64_t max_low_pfn;		/* PFNs below it have a logical address */
	uint32_t nr_free_ranges;
	uint32_t reserved1;
	/* RAM the buddy allocator owns at boot (RAM minus reserved), ascending,
	 * each inside one zone: exactly what memblock_free_all() hands over. */
	const struct kmemspec_range *free_ranges;
	const char *json;		/* the whole description (`kmemspec machine NAME --json`) */
	uint32_t word_bits;		/* BITS_PER_LONG: 64, or 32 with highmem */
	uint32_t section_size_bits;	/* SECTION_SIZE_BITS: pfn_valid() holds per memory section */
	uint32_t phys_addr_bits;	/* MAX_PHYSMEM_BITS */
	uint32_t nr_ram;
	const struct kmemspec_range *ram;	/* all RAM, reserved ranges included, ascending */
	uint32_t nr_reserved;
	uint32_t reserved2;
	const struct kmemspec_range *reserved;	/* memblock-reserved: never handed to the buddy allocator */
};

/* -- the kernel around the allocator ---------------------------------------- */

struct kmemspec_env {
	void *opaque;
	/* The caller's context as a preempt_count: 0 process, 0x1 atomic,
	 * 0x100 softirq, 0x10000 hardirq (include/linux/preempt.h). */
	uint32_t (*preempt_count)(void *opaque);
	/* Call where the kernel calls might_sleep() (might_alloc: every
	 * allocation whose flags allow blocking). In atomic context the suite
	 * records the kernel's "sleeping function called from invalid context". */
	void (*might_sleep)(void *opaque);
	/* Call where the allocator would block (reclaim, waiting). */
	void (*sleep)(void *opaque);
	/* A misuse the kernel reports and then carries on from (WARN): a
	 * KMEMSPEC_E_* code. Fatal misuse is returned instead. */
	void (*report)(void *opaque, int code);
};

/* -- what the library exports ------------------------------------------------ */

/* Required. */
uint32_t kmemspec_abi_version(void);		/* return KMEMSPEC_ABI_VERSION */
const char *kmemspec_capabilities(void);	/* e.g. "pages get_free_pages memory free_area" */
const char *kmemspec_claims(void);		/* e.g. "BUDDY-DOUBLE-FREE CTX-MIGHT-SLEEP", or "" */
/* A fresh allocator for one example; machine and env stay valid until
 * kmemspec_destroy. NULL if it cannot be built (a usage error, exit 2). */
void *kmemspec_create(const struct kmemspec_machine *machine, const struct kmemspec_env *env);
void kmemspec_destroy(void *iut);

/* "pages": alloc_pages(gfp, order) -> first PFN; __free_pages(pfn_to_page(pfn), order). */
int kmemspec_alloc_pages(void *iut, kmemspec_gfp_t gfp, uint32_t order, uint64_t *pfn);
int kmemspec_free_pages(void *iut, uint64_t pfn, uint32_t order);

/* "get_free_pages": __get_free_pages -> logical address; free_pages(addr, order), addr 0 a no-op. */
int kmemspec_get_free_pages(void *iut, kmemspec_gfp_t gfp, uint32_t order, uint64_t *addr);
int kmemspec_free_pages_addr(void *iut, uint64_t addr, uint32_t order);

/* "memory": the allocator's simulated physical memory, byte-addressed. */
int kmemspec_read_phys(void *iut, uint64_t phys_addr, void *buf, uint64_t len);
int kmemspec_write_phys(void *iut, uint64_t phys_addr, const void *buf, uint64_t len);

/* "free_area": every free block as (pfn, order), any split. Fill at most cap
 * entries and return how many there are; the suite calls again with a bigger
 * buffer when the count exceeds cap. A negative count is a failure
 * (IUT-RETURN-TYPE). */
int64_t kmemspec_free_area(void *iut, uint64_t *pfn, uint32_t *order, uint64_t cap);

/* "zone_free_pages": the free pages of zone ZONE (its enum zone_type index:
 * DMA 0, DMA32 1, NORMAL 2, HIGHMEM 3, MOVABLE 4), as /proc/zoneinfo's
 * nr_free_pages; 0 for a zone the machine does not populate. For allocators
 * that cannot list their free blocks: a count that differs from the suite's is
 * a leak (or an invention), seen at the step that made it. */
int kmemspec_zone_free_pages(void *iut, uint64_t zone, uint64_t *nr_free);

/* "kmalloc": objects are logical addresses (page_offset + physical address).
 * kmalloc(0) stores KMEMSPEC_ZERO_SIZE_PTR; a failure is KMEMSPEC_NOMEM. */
int kmemspec_kmalloc(void *iut, uint64_t size, kmemspec_gfp_t gfp, uint64_t *addr);
int kmemspec_kzalloc(void *iut, uint64_t size, kmemspec_gfp_t gfp, uint64_t *addr);
int kmemspec_kmalloc_array(void *iut, uint64_t n, uint64_t size, kmemspec_gfp_t gfp, uint64_t *addr);
int kmemspec_krealloc(void *iut, uint64_t addr, uint64_t size, kmemspec_gfp_t gfp, uint64_t *new_addr);
int kmemspec_ksize(void *iut, uint64_t addr, uint64_t *size);
int kmemspec_kfree(void *iut, uint64_t addr);

/* "slab": caches are named by ids the library chooses (never 0). */
int kmemspec_kmem_cache_create(void *iut, const char *name, uint64_t size, uint64_t align, uint64_t flags, uint64_t *cache);
int kmemspec_kmem_cache_alloc(void *iut, uint64_t cache, kmemspec_gfp_t gfp, uint64_t *addr);
int kmemspec_kmem_cache_free(void *iut, uint64_t cache, uint64_t addr);
int kmemspec_kmem_cache_destroy(void *iut, uint64_t cache);
int kmemspec_kmem_cache_shrink(void *iut, uint64_t cache);

/* "slab_info": every page block the slab layer holds, so that the suite keeps
 * page liveness exact: slabs of each cache (cache 0: kmalloc's own caches)
 * and large kmalloc blocks (cache 0, inuse = total = 1). Same calling
 * convention as kmemspec_free_area. */
struct kmemspec_slab {
	uint64_t cache;
	uint64_t pfn;
	uint32_t order;
	uint32_t inuse;
	uint32_t total;
	uint32_t reserved;
};
int64_t kmemspec_slabs(void *iut, struct kmemspec_slab *slabs, uint64_t cap);

/* "slab_debug": validate_slab_cache(). Report an overwritten poison or red
 * zone at least once through env->report(KMEMSPEC_E_SLAB_CORRUPTION), restore
 * it, and return KMEMSPEC_OK. */
int kmemspec_kmem_cache_validate(void *iut, uint64_t cache);

#ifdef __cplusplus
}
#endif

#endif /* KMEMSPEC_IUT_H */
