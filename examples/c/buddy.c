// SPDX-License-Identifier: MIT
/*
 * buddy.c - a binary buddy page allocator behind the kmemspec C ABI.
 *
 * Each populated zone keeps free_area[order]: an intrusive doubly linked
 * list threaded through a per-instance array of struct page, one per PFN up
 * to the end of the last free range. Allocation takes the smallest free
 * block that is big enough and splits it; freeing merges with the buddy
 * (pfn ^ (1 << order)) while that buddy is a free block of the same order in
 * the same zone. Zone choice, watermarks and misuse detection follow
 * mm/page_alloc.c as kmemspec models it. Simulated memory is sparse: a page
 * gets its buffer on first write.
 *
 * On top sits a small slab layer (after mm/slub.c as kmemspec models it):
 * each cache carves slabs of 2^order lowmem pages into objects; a slab
 * keeps its free list in a malloc'ed index array, outside the simulated
 * memory, so a live object is never written. kmalloc serves sizes up to
 * KMALLOC_MAX_CACHE_SIZE from kmalloc-<bucket> (dma-kmalloc-<bucket> for
 * GFP_DMA) caches and larger ones as compound page blocks. A per-PFN array
 * maps slab and large-kmalloc pages to their struct slab for kfree.
 * A SLAB_RED_ZONE cache puts 8 bytes (rounded up to its alignment) of red
 * zone before each object and 8 after it: 0xcc around a live object, 0xbb
 * around a free one, checked and restored by kmem_cache_validate.
 *
 * Build with -DSEEDED_BUG for a variant whose zonelist walk starts one zone
 * above the one gfp_zone() selects (caught by GFP-ZONE-ELIGIBLE).
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kmemspec_iut.h"

#define NO_PFN		UINT32_MAX
#define RED_ZONE	8		/* red zone bytes after an object (and at least before it) */
#define RED_ZONE_CHUNK	64		/* bytes of red zone written or read at a time */
#define RED_INACTIVE	0xbb		/* SLUB_RED_INACTIVE */
#define RED_ACTIVE	0xcc		/* SLUB_RED_ACTIVE */
#define MAX_ORDERS	32		/* PFNs are 32-bit indices here */

/* struct page flags */
#define PG_BUDDY	0x1		/* heads a block on a free list */
#define PG_HEAD		0x2		/* heads a live block */
#define PG_COMP		0x4		/* ... allocated with __GFP_COMP */

struct page {
	uint32_t next;
	uint32_t prev;
	uint8_t order;
	uint8_t flags;
};

struct zone {
	bool configured;
	bool populated;
	uint64_t start_pfn;
	uint64_t end_pfn;
	uint64_t wmark_min;
	uint64_t wmark_low;
	uint64_t lowmem_reserve[KMEMSPEC_NR_ZONE_TYPES];
	uint64_t nr_free;
	uint32_t nonempty;		/* bit k set: free_area[k] is not empty */
	uint32_t free_area[MAX_ORDERS];	/* list heads */
};

/* Simulated memory: chunks of MEM_CHUNK page pointers, allocated on demand. */
#define MEM_CHUNK_SHIFT	9
#define MEM_CHUNK	(1u << MEM_CHUNK_SHIFT)

struct buddy {
	const struct kmemspec_machine *machine;
	const struct kmemspec_env *env;
	uint32_t max_order;
	uint32_t page_shift;
	uint64_t nr_pfns;		/* pages[] covers [0, nr_pfns) */
	struct page *pages;
	struct zone zones[KMEMSPEC_NR_ZONE_TYPES];
	uint32_t section_pfn_shift;	/* pfn_valid() granularity */
	uint64_t addr_limit;		/* 1 << word_bits, 0 for 64-bit */
	uint64_t nr_chunks;
	uint8_t ***mem;
	struct slab_layer *sl;
};

/* -- GFP ------------------------------------------------------------------- */

/* GFP_ZONE_TABLE by gfp & GFP_ZONEMASK; -1 marks GFP_ZONE_BAD. */
static const int8_t gfp_zone_table[16] = {
	KMEMSPEC_ZONE_NORMAL,	/* 0x0 */
	KMEMSPEC_ZONE_DMA,	/* 0x1 DMA */
	KMEMSPEC_ZONE_HIGHMEM,	/* 0x2 HIGHMEM */
	-1,
	KMEMSPEC_ZONE_DMA32,	/* 0x4 DMA32 */
	-1, -1, -1,
	KMEMSPEC_ZONE_NORMAL,	/* 0x8 MOVABLE */
	KMEMSPEC_ZONE_DMA,	/* 0x9 MOVABLE|DMA */
	KMEMSPEC_ZONE_MOVABLE,	/* 0xa MOVABLE|HIGHMEM */
	-1,
	KMEMSPEC_ZONE_DMA32,	/* 0xc MOVABLE|DMA32 */
	-1, -1, -1,
};

static bool gfp_zone_bad(kmemspec_gfp_t gfp)
{
	return gfp_zone_table[gfp & KMEMSPEC_GFP_ZONEMASK] < 0;
}

/* The highest zone a valid mask may use: OPT_ZONE_* fall back to NORMAL. */
static int gfp_zone(const struct buddy *b, kmemspec_gfp_t gfp)
{
	int zt = gfp_zone_table[gfp & KMEMSPEC_GFP_ZONEMASK];

	/* ZONE_MOVABLE is never compiled out, configured or not */
	if (zt != KMEMSPEC_ZONE_MOVABLE && !b->zones[zt].configured)
		return KMEMSPEC_ZONE_NORMAL;
	return zt;
}

/*
 * The slow path's min watermark: __GFP_HIGH halves it, and a request that
 * can neither reclaim nor is barred from reserves gets a further quarter.
 */
static uint64_t reserve_min(uint64_t mark, kmemspec_gfp_t gfp)
{
	if (gfp & KMEMSPEC___GFP_HIGH) {
		mark -= mark / 2;
		if (!(gfp & (KMEMSPEC___GFP_DIRECT_RECLAIM | KMEMSPEC___GFP_NOMEMALLOC)))
			mark -= mark / 4;
	}
	return mark;
}

/* -- free lists ------------------------------------------------------------ */

static void add_to_free_area(struct buddy *b, struct zone *z, uint32_t pfn, uint32_t order)
{
	struct page *page = &b->pages[pfn];
	uint32_t head = z->free_area[order];

	page->next = head;
	page->prev = NO_PFN;
	page->order = (uint8_t)order;
	page->flags = PG_BUDDY;
	if (head != NO_PFN)
		b->pages[head].prev = pfn;
	z->free_area[order] = pfn;
	z->nonempty |= 1u << order;
}

static void del_from_free_area(struct buddy *b, struct zone *z, uint32_t pfn)
{
	struct page *page = &b->pages[pfn];
	uint32_t order = page->order;

	if (page->prev != NO_PFN)
		b->pages[page->prev].next = page->next;
	else
		z->free_area[order] = page->next;
	if (page->next != NO_PFN)
		b->pages[page->next].prev = page->prev;
	page->flags = 0;
	if (z->free_area[order] == NO_PFN)
		z->nonempty &= ~(1u << order);
}

static bool zone_has_block(const struct zone *z, uint32_t order)
{
	return (z->nonempty >> order) != 0;
}

static bool zone_spans(const struct zone *z, uint64_t pfn)
{
	return z->populated && z->start_pfn <= pfn && pfn < z->end_pfn;
}

static struct zone *page_zone(struct buddy *b, uint64_t pfn)
{
	for (int zt = 0; zt < KMEMSPEC_NR_ZONE_TYPES; zt++)
		if (zone_spans(&b->zones[zt], pfn))
			return &b->zones[zt];
	return NULL;
}

/* Smallest sufficient block first; the split-off upper halves go back. */
static uint32_t rmqueue(struct buddy *b, struct zone *z, uint32_t order)
{
	uint32_t k = order + (uint32_t)__builtin_ctz(z->nonempty >> order);
	uint32_t pfn = z->free_area[k];

	del_from_free_area(b, z, pfn);
	while (k > order) {
		k--;
		add_to_free_area(b, z, pfn + (1u << k), k);
	}
	z->nr_free -= 1u << order;
	return pfn;
}

static bool page_is_buddy(struct buddy *b, struct zone *z, uint64_t buddy, uint32_t order)
{
	const struct page *page;

	if (buddy >= b->nr_pfns || !zone_spans(z, buddy))
		return false;
	page = &b->pages[buddy];
	return (page->flags & PG_BUDDY) && page->order == order;
}

static void free_one_block(struct buddy *b, uint32_t pfn, uint32_t order)
{
	struct zone *z = page_zone(b, pfn);

	b->pages[pfn].flags = 0;
	z->nr_free += 1u << order;
	while (order < b->max_order) {
		uint32_t buddy = pfn ^ (1u << order);

		if (!page_is_buddy(b, z, buddy, order))
			break;
		del_from_free_area(b, z, buddy);
		pfn &= buddy;
		order++;
	}
	add_to_free_area(b, z, pfn, order);
}

/* -- simulated memory ------------------------------------------------------ */

static uint8_t *mem_page(struct buddy *b, uint64_t pfn, bool create)
{
	uint64_t chunk = pfn >> MEM_CHUNK_SHIFT;
	uint8_t **pages;

	if (chunk >= b->nr_chunks)
		return NULL;
	pages = b->mem[chunk];
	if (!pages) {
		if (!create)
			return NULL;
		pages = b->mem[chunk] = calloc(MEM_CHUNK, sizeof(*pages));
		if (!pages)
			return NULL;
	}
	if (!pages[pfn & (MEM_CHUNK - 1)] && create)
		pages[pfn & (MEM_CHUNK - 1)] = calloc(1, (size_t)1 << b->page_shift);
	return pages[pfn & (MEM_CHUNK - 1)];
}

/* A page without a buffer reads as zero, so zeroing is dropping buffers. */
static void clear_block(struct buddy *b, uint64_t pfn, uint32_t order)
{
	for (uint64_t p = pfn; p < pfn + (1ull << order); p++) {
		uint8_t **pages;

		if ((p >> MEM_CHUNK_SHIFT) >= b->nr_chunks)
			return;
		pages = b->mem[p >> MEM_CHUNK_SHIFT];
		if (!pages) {
			p |= MEM_CHUNK - 1;
			continue;
		}
		free(pages[p & (MEM_CHUNK - 1)]);
		pages[p & (MEM_CHUNK - 1)] = NULL;
	}
}

/* -- allocation ------------------------------------------------------------ */

#define NO_WMARK	UINT64_MAX

static uint64_t zone_mark(const struct zone *z, int which, kmemspec_gfp_t gfp, int highest)
{
	uint64_t mark = which ? reserve_min(z->wmark_min, gfp) : z->wmark_low;

	return mark + z->lowmem_reserve[highest];
}

enum { WMARK_LOW, WMARK_MIN, WMARK_NONE };

/*
 * One pass over the zonelist: the populated zones at or below the top zone,
 * highest first, skipping highmem when the caller needs a logical address.
 */
static struct zone *zonelist_walk(struct buddy *b, kmemspec_gfp_t gfp, uint32_t order,
				  int highest, bool lowmem, int which)
{
	uint64_t need = (1ull << order) - 1;
	int top = highest;

#ifdef SEEDED_BUG
	/* off by one: the walk starts above the zone gfp_zone() allows */
	if (top + 1 < KMEMSPEC_NR_ZONE_TYPES)
		top++;
#endif
	for (int zt = top; zt >= 0; zt--) {
		struct zone *z = &b->zones[zt];

		if (!z->populated || !zone_has_block(z, order))
			continue;
		if (lowmem && z->end_pfn > b->machine->max_low_pfn)
			continue;
		if (which == WMARK_NONE || z->nr_free > zone_mark(z, which, gfp, highest) + need)
			return z;
	}
	return NULL;
}

/*
 * The fast path asks for the low watermark; the slow path settles for min
 * with the caller's reserves; __GFP_MEMALLOC ignores watermarks; a blocking
 * caller reclaims (nothing here to reclaim) and __GFP_NOFAIL then takes
 * whatever is free.
 */
static struct zone *pick_zone(struct buddy *b, kmemspec_gfp_t gfp, uint32_t order, bool lowmem)
{
	int highest = gfp_zone(b, gfp);
	struct zone *z;

	z = zonelist_walk(b, gfp, order, highest, lowmem, WMARK_LOW);
	if (!z)
		z = zonelist_walk(b, gfp, order, highest, lowmem, WMARK_MIN);
	if (z)
		return z;
	if ((gfp & KMEMSPEC___GFP_MEMALLOC) && !(gfp & KMEMSPEC___GFP_NOMEMALLOC))
		return zonelist_walk(b, gfp, order, highest, lowmem, WMARK_NONE);
	if (!(gfp & KMEMSPEC___GFP_DIRECT_RECLAIM))
		return NULL;
	if (b->env && b->env->sleep)
		b->env->sleep(b->env->opaque);
	if (gfp & KMEMSPEC___GFP_NOFAIL)
		return zonelist_walk(b, gfp, order, highest, lowmem, WMARK_NONE);
	return NULL;
}

static int alloc_block(struct buddy *b, kmemspec_gfp_t gfp, uint32_t order, bool lowmem, uint64_t *out)
{
	struct zone *z;
	uint32_t pfn;

	/* too big is NULL before gfp_zone() or might_alloc() look at the mask */
	if (order > b->max_order)
		return KMEMSPEC_NOMEM;
	if (gfp_zone_bad(gfp))
		return KMEMSPEC_E_INVALID_GFP;
	if ((gfp & KMEMSPEC___GFP_DIRECT_RECLAIM) && b->env && b->env->might_sleep)
		b->env->might_sleep(b->env->opaque);
	z = pick_zone(b, gfp, order, lowmem);
	if (!z)
		return KMEMSPEC_NOMEM;
	pfn = rmqueue(b, z, order);
	b->pages[pfn].order = (uint8_t)order;
	b->pages[pfn].flags = PG_HEAD | ((gfp & KMEMSPEC___GFP_COMP) ? PG_COMP : 0);
	if (gfp & KMEMSPEC___GFP_ZERO)
		clear_block(b, pfn, order);
	*out = pfn;
	return KMEMSPEC_OK;
}

/* -- free ------------------------------------------------------------------ */

static bool pfn_usable(const struct buddy *b, uint64_t pfn)
{
	const struct kmemspec_machine *m = b->machine;
	uint32_t lo = 0, hi = m->nr_free_ranges;

	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;

		if (pfn < m->free_ranges[mid].start_pfn)
			hi = mid;
		else if (pfn >= m->free_ranges[mid].end_pfn)
			lo = mid + 1;
		else
			return true;
	}
	return false;
}

/* Blocks are aligned, so a live block holding pfn as a tail page starts at pfn rounded down to its order. */
static bool pfn_is_tail(const struct buddy *b, uint64_t pfn)
{
	for (uint32_t k = 1; k <= b->max_order; k++) {
		const struct page *head = &b->pages[pfn & ~((1ull << k) - 1)];

		if ((head->flags & PG_HEAD) && head->order >= k)
			return true;
	}
	return false;
}

/* What DEBUG_VM would catch in __free_pages(), in the order it would. */
static int check_free(const struct buddy *b, uint64_t pfn, uint32_t order)
{
	if (pfn < b->nr_pfns) {
		const struct page *page = &b->pages[pfn];

		/*
		 * The kernel checks the order of compound pages only; for the
		 * others a wrong order is undefined, and refusing it keeps the
		 * free lists sane where the kernel would corrupt them.
		 */
		if (page->flags & PG_HEAD)
			return page->order == order ? KMEMSPEC_OK : KMEMSPEC_E_FREE_WRONG_ORDER;
		if (pfn_is_tail(b, pfn))
			return KMEMSPEC_E_FREE_INTERIOR;
	}
	if (!pfn_usable(b, pfn))
		return KMEMSPEC_E_BAD_FREE;
	/* refcount already 0: freed before or never handed out */
	return KMEMSPEC_E_DOUBLE_FREE;
}

static bool pfn_valid(const struct buddy *b, uint64_t pfn)
{
	uint64_t start = pfn >> b->section_pfn_shift << b->section_pfn_shift;
	uint64_t end = start + (1ull << b->section_pfn_shift);

	for (uint32_t i = 0; i < b->machine->nr_ram; i++)
		if (b->machine->ram[i].start_pfn < end && b->machine->ram[i].end_pfn > start)
			return true;
	return false;
}

/* __virt_addr_valid(): in the linear map and backed by a struct page. */
static bool virt_to_pfn(const struct buddy *b, uint64_t addr, uint64_t *pfn)
{
	const struct kmemspec_machine *m = b->machine;

	if (addr < m->page_offset || (b->addr_limit && addr >= b->addr_limit))
		return false;
	*pfn = (addr - m->page_offset) >> b->page_shift;
	return pfn_valid(b, *pfn);
}

/* -- the machine description ----------------------------------------------- */

/* pfn_valid() is per memory section; virt_addr_valid() also needs the word size. */
static bool setup_virt_addr_valid(struct buddy *b)
{
	const struct kmemspec_machine *m = b->machine;

	if (m->section_size_bits < m->page_shift || m->section_size_bits - m->page_shift > 62)
		return false;
	b->section_pfn_shift = m->section_size_bits - m->page_shift;
	b->addr_limit = m->word_bits < 64 ? 1ull << m->word_bits : 0;
	return true;
}

static bool setup_zones(struct buddy *b)
{
	const struct kmemspec_machine *m = b->machine;

	for (uint32_t i = 0; i < m->nr_zones; i++) {
		const struct kmemspec_zone *mz = &m->zones[i];
		struct zone *z;

		if (mz->zone_type >= KMEMSPEC_NR_ZONE_TYPES)
			return false;
		z = &b->zones[mz->zone_type];
		z->configured = true;
		z->populated = mz->end_pfn > mz->start_pfn;
		z->start_pfn = mz->start_pfn;
		z->end_pfn = mz->end_pfn;
		z->wmark_min = mz->watermark_min;
		z->wmark_low = mz->watermark_low;
		memcpy(z->lowmem_reserve, mz->lowmem_reserve, sizeof(z->lowmem_reserve));
	}
	for (int zt = 0; zt < KMEMSPEC_NR_ZONE_TYPES; zt++)
		for (int k = 0; k < MAX_ORDERS; k++)
			b->zones[zt].free_area[k] = NO_PFN;
	return true;
}

/*
 * memblock_free_all(): each range goes over in the largest aligned blocks
 * that fit, clipped to zones so that no block straddles a boundary. Free
 * ranges never abut inside a zone (memblock merges adjacent regions), so
 * nothing needs merging across them.
 */
static void free_range(struct buddy *b, uint64_t start, uint64_t end)
{
	for (int zt = 0; zt < KMEMSPEC_NR_ZONE_TYPES; zt++) {
		struct zone *z = &b->zones[zt];
		uint64_t pfn = start > z->start_pfn ? start : z->start_pfn;
		uint64_t stop = end < z->end_pfn ? end : z->end_pfn;

		while (z->populated && pfn < stop) {
			uint32_t order = b->max_order;

			if (pfn && (uint32_t)__builtin_ctzll(pfn) < order)
				order = (uint32_t)__builtin_ctzll(pfn);
			while (pfn + (1ull << order) > stop)
				order--;
			add_to_free_area(b, z, (uint32_t)pfn, order);
			z->nr_free += 1ull << order;
			pfn += 1ull << order;
		}
	}
}

/* -- the slab layer --------------------------------------------------------- */

#define ZERO_SIZE_PTR		KMEMSPEC_ZERO_SIZE_PTR
#define CACHE_LINE_SIZE		64
#define SLAB_MINALIGN		8
#define SLAB_MIN_OBJECTS	8	/* a slab grows until this many objects fit ... */
#define SLAB_MAX_ORDER		3	/* ... up to PAGE_ALLOC_COSTLY_ORDER */
#define SLAB_KEEP_EMPTY		2	/* empty slabs a cache keeps for reuse */
#define NR_KMALLOC_INDEX	24	/* kmalloc_index(): 1 (96), 2 (192), 3..23 (2^i) */

#define OBJ_END		UINT32_MAX		/* end of a slab's free list */
#define OBJ_USED	(UINT32_MAX - 1)	/* the object is live */

#define GFP_SLAB_BUG_MASK	(KMEMSPEC___GFP_DMA32 | KMEMSPEC___GFP_HIGHMEM)
/* GFP_RECLAIM_MASK | GFP_CONSTRAINT_MASK: what a new slab keeps of the caller's flags */
#define GFP_SLAB_KEEP	(KMEMSPEC___GFP_RECLAIM | KMEMSPEC___GFP_HIGH | KMEMSPEC___GFP_IO | \
			 KMEMSPEC___GFP_FS | KMEMSPEC___GFP_NOWARN | KMEMSPEC___GFP_RETRY_MAYFAIL | \
			 KMEMSPEC___GFP_NOFAIL | KMEMSPEC___GFP_NORETRY | KMEMSPEC___GFP_MEMALLOC | \
			 KMEMSPEC___GFP_NOMEMALLOC | KMEMSPEC___GFP_HARDWALL | KMEMSPEC___GFP_THISNODE)

struct kmem_cache;

/* A slab, or (cache NULL) a large kmalloc block holding one object. */
struct slab {
	struct kmem_cache *cache;
	struct slab *next;
	struct slab *prev;
	uint64_t pfn;
	uint32_t order;
	uint32_t inuse;
	uint32_t total;
	uint32_t freelist;		/* first free object, OBJ_END if full */
	uint32_t *free_next;		/* per object: the next free one, OBJ_END or OBJ_USED */
};

struct kmem_cache {
	uint64_t id;
	bool live;
	bool kmalloc;
	uint64_t object_size;
	uint64_t size;			/* the stride: red zones and object rounded up to the alignment */
	uint64_t red;			/* SLAB_RED_ZONE: red zone bytes before the object; 8 after it */
	uint32_t order;			/* preferred slab order */
	uint32_t min_order;		/* get_order(size): the fallback */
	kmemspec_gfp_t zone_gfp;	/* __GFP_DMA / __GFP_DMA32 for SLAB_CACHE_DMA / DMA32 */
	struct slab *slabs;
	uint32_t nr_empty;
	uint64_t nr_live;		/* live objects */
};

struct slab_layer {
	struct kmem_cache **caches;	/* by id - 1; destroyed caches stay, dead */
	uint64_t nr_caches;
	uint64_t cap_caches;
	struct kmem_cache *kmalloc_caches[2][NR_KMALLOC_INDEX];	/* [dma][index] */
	struct slab *large;		/* large kmalloc blocks */
	struct slab **slab_of;		/* by pfn below nr_low */
	uint64_t nr_low;
};

static void env_might_sleep(const struct buddy *b)
{
	if (b->env && b->env->might_sleep)
		b->env->might_sleep(b->env->opaque);
}

static void env_report(const struct buddy *b, int code)
{
	if (b->env && b->env->report)
		b->env->report(b->env->opaque, code);
}

/* might_alloc(): only a blocking allocation may sleep */
static void might_alloc(const struct buddy *b, kmemspec_gfp_t gfp)
{
	if (gfp & KMEMSPEC___GFP_DIRECT_RECLAIM)
		env_might_sleep(b);
}

static uint64_t kmalloc_max_cache_size(const struct buddy *b)
{
	return 2ull << b->page_shift;
}

static uint64_t kmalloc_max_size(const struct buddy *b)
{
	return 1ull << (b->max_order + b->page_shift);
}

static uint32_t get_order(uint64_t size, uint32_t page_shift)
{
	uint64_t pages = (size - 1) >> page_shift;

	return pages ? 64 - (uint32_t)__builtin_clzll(pages) : 0;
}

/* kmalloc_size_index[] / __kmalloc_index(): 8, 16, 32, 64, 96, 128, 192, 256, ... */
static uint64_t kmalloc_bucket(uint64_t size)
{
	if (size <= 8)
		return 8;
	if (size > 64 && size <= 96)
		return 96;
	if (size > 128 && size <= 192)
		return 192;
	return 1ull << (64 - __builtin_clzll(size - 1));
}

static uint32_t kmalloc_index(uint64_t bucket)
{
	if (bucket == 96)
		return 1;
	if (bucket == 192)
		return 2;
	return (uint32_t)__builtin_ctzll(bucket);
}

/* mm/slab_common.c calculate_alignment() */
static uint64_t calculate_alignment(uint64_t flags, uint64_t align, uint64_t size)
{
	if (flags & KMEMSPEC_SLAB_HWCACHE_ALIGN) {
		uint64_t ralign = CACHE_LINE_SIZE;

		while (size <= ralign / 2)
			ralign /= 2;
		if (align < ralign)
			align = ralign;
	}
	if (align < SLAB_MINALIGN)
		align = SLAB_MINALIGN;
	return (align + 7) & ~7ull;
}

static uint64_t pfn_to_virt(const struct buddy *b, uint64_t pfn)
{
	return b->machine->page_offset + (pfn << b->page_shift);
}

static struct slab *slab_at(const struct buddy *b, uint64_t addr)
{
	const struct slab_layer *sl = b->sl;
	uint64_t pfn;

	if (addr < b->machine->page_offset)
		return NULL;
	pfn = (addr - b->machine->page_offset) >> b->page_shift;
	return pfn < sl->nr_low ? sl->slab_of[pfn] : NULL;
}

static void set_slab_of(struct buddy *b, const struct slab *slab, struct slab *val)
{
	for (uint64_t p = slab->pfn; p < slab->pfn + (1ull << slab->order); p++)
		b->sl->slab_of[p] = val;
}

static void slab_link(struct slab **head, struct slab *slab)
{
	slab->prev = NULL;
	slab->next = *head;
	if (*head)
		(*head)->prev = slab;
	*head = slab;
}

static void slab_unlink(struct slab **head, struct slab *slab)
{
	if (slab->prev)
		slab->prev->next = slab->next;
	else
		*head = slab->next;
	if (slab->next)
		slab->next->prev = slab->prev;
}

/* Lowmem pages for the slab layer, from the buddy allocator. */
static int slab_alloc_pages(struct buddy *b, kmemspec_gfp_t gfp, uint32_t order, uint64_t *pfn)
{
	int ret = alloc_block(b, gfp, order, true, pfn);

	/* the slab layer only asks for valid masks; anything else is just no memory */
	return ret == KMEMSPEC_OK ? KMEMSPEC_OK : KMEMSPEC_NOMEM;
}

/* Only the pages' own buffers are touched: a page without one reads zero. */
static void mem_zero(struct buddy *b, uint64_t phys, uint64_t len)
{
	uint64_t size = 1ull << b->page_shift;

	while (len) {
		uint64_t off = phys & (size - 1);
		uint64_t n = size - off < len ? size - off : len;
		uint8_t *page = mem_page(b, phys >> b->page_shift, false);

		if (page)
			memset(page + off, 0, n);
		phys += n;
		len -= n;
	}
}

static void mem_copy(struct buddy *b, uint64_t dst, uint64_t src, uint64_t len)
{
	uint64_t size = 1ull << b->page_shift;

	while (len) {
		uint64_t off = src & (size - 1);
		uint64_t n = size - off < len ? size - off : len;
		const uint8_t *page = mem_page(b, src >> b->page_shift, false);

		if (page)
			kmemspec_write_phys(b, dst, page + off, n);
		else
			mem_zero(b, dst, n);
		dst += n;
		src += n;
		len -= n;
	}
}

static struct kmem_cache *cache_lookup(const struct buddy *b, uint64_t id)
{
	const struct slab_layer *sl = b->sl;

	if (!id || id > sl->nr_caches || !sl->caches[id - 1]->live)
		return NULL;
	return sl->caches[id - 1];
}

static struct kmem_cache *new_cache(struct buddy *b, uint64_t object_size, uint64_t align,
				    uint64_t flags, bool kmalloc)
{
	struct slab_layer *sl = b->sl;
	uint32_t max_order = b->max_order < SLAB_MAX_ORDER ? b->max_order : SLAB_MAX_ORDER;
	struct kmem_cache *s;

	if (sl->nr_caches == sl->cap_caches) {
		uint64_t cap = sl->cap_caches ? 2 * sl->cap_caches : 16;
		struct kmem_cache **caches = realloc(sl->caches, cap * sizeof(*caches));

		if (!caches)
			return NULL;
		sl->caches = caches;
		sl->cap_caches = cap;
	}
	s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	align = calculate_alignment(flags, align, object_size);
	s->object_size = object_size;
	if (align > kmalloc_max_size(b)) {
		/* no slab can hold an object this aligned: every allocation fails */
		s->size = align;
		s->min_order = s->order = b->max_order + 1;
	} else {
		if (flags & KMEMSPEC_SLAB_RED_ZONE)
			s->red = (RED_ZONE + align - 1) / align * align;
		s->size = (s->red + object_size + (s->red ? RED_ZONE : 0) + align - 1) / align * align;
		s->min_order = get_order(s->size, b->page_shift);
		s->order = s->min_order;
		while (s->order < max_order && ((1ull << (s->order + b->page_shift)) / s->size) < SLAB_MIN_OBJECTS)
			s->order++;
	}
	if (flags & KMEMSPEC_SLAB_CACHE_DMA)
		s->zone_gfp = KMEMSPEC___GFP_DMA;
	else if (flags & KMEMSPEC_SLAB_CACHE_DMA32)
		s->zone_gfp = KMEMSPEC___GFP_DMA32;
	s->kmalloc = kmalloc;
	s->live = true;
	sl->caches[sl->nr_caches++] = s;
	s->id = sl->nr_caches;
	return s;
}

static void mem_fill(struct buddy *b, uint64_t phys, uint8_t val, uint64_t len)
{
	uint8_t bytes[RED_ZONE_CHUNK];

	memset(bytes, val, sizeof(bytes));
	for (uint64_t n; len; phys += n, len -= n) {
		n = len < sizeof(bytes) ? len : sizeof(bytes);
		kmemspec_write_phys(b, phys, bytes, n);
	}
}

static bool mem_is(struct buddy *b, uint64_t phys, uint8_t val, uint64_t len)
{
	uint8_t got[RED_ZONE_CHUNK];

	for (uint64_t n; len; phys += n, len -= n) {
		n = len < sizeof(got) ? len : sizeof(got);
		kmemspec_read_phys(b, phys, got, n);
		for (uint64_t i = 0; i < n; i++)
			if (got[i] != val)
				return false;
	}
	return true;
}

/* init_object()'s red zones: val on either side of the object at addr */
static void red_zone_fill(struct buddy *b, const struct kmem_cache *s, uint64_t addr, uint8_t val)
{
	uint64_t phys = addr - b->machine->page_offset;

	if (!s->red)
		return;
	mem_fill(b, phys - s->red, val, s->red);
	mem_fill(b, phys + s->object_size, val, RED_ZONE);
}

/* check_bytes_and_report() + restore_bytes(): a report per red zone overwritten */
static void red_zone_check(struct buddy *b, const struct kmem_cache *s, uint64_t addr, uint8_t val)
{
	uint64_t phys = addr - b->machine->page_offset;
	uint64_t start[2] = { phys - s->red, phys + s->object_size };
	uint64_t len[2] = { s->red, RED_ZONE };

	for (int i = 0; i < 2; i++) {
		if (!mem_is(b, start[i], val, len[i])) {
			env_report(b, KMEMSPEC_E_SLAB_CORRUPTION);
			mem_fill(b, start[i], val, len[i]);
		}
	}
}

/* allocate_slab(): the preferred order without trying hard, then the minimum one */
static struct slab *new_slab(struct buddy *b, struct kmem_cache *s, kmemspec_gfp_t gfp)
{
	kmemspec_gfp_t base = (gfp & GFP_SLAB_KEEP) | s->zone_gfp | KMEMSPEC___GFP_COMP;
	uint32_t order = s->order;
	struct slab *slab;
	uint64_t pfn, nr;
	int ret = KMEMSPEC_NOMEM;

	if (s->order > s->min_order)
		ret = slab_alloc_pages(b, (base | KMEMSPEC___GFP_NOWARN | KMEMSPEC___GFP_NORETRY) &
				       ~KMEMSPEC___GFP_NOFAIL, order, &pfn);
	if (ret != KMEMSPEC_OK) {
		order = s->min_order;
		if (slab_alloc_pages(b, base, order, &pfn) != KMEMSPEC_OK)
			return NULL;
	}
	nr = (1ull << (order + b->page_shift)) / s->size;
	slab = calloc(1, sizeof(*slab));
	if (slab)
		slab->free_next = malloc(nr * sizeof(*slab->free_next));
	if (!slab || !slab->free_next) {
		free(slab);
		free_one_block(b, (uint32_t)pfn, order);
		return NULL;
	}
	slab->cache = s;
	slab->pfn = pfn;
	slab->order = order;
	slab->total = (uint32_t)nr;
	for (uint32_t i = 0; i < slab->total; i++) {
		slab->free_next[i] = i + 1 < slab->total ? i + 1 : OBJ_END;
		red_zone_fill(b, s, pfn_to_virt(b, pfn) + i * s->size + s->red, RED_INACTIVE);
	}
	slab->freelist = 0;
	slab_link(&s->slabs, slab);
	set_slab_of(b, slab, slab);
	s->nr_empty++;
	return slab;
}

/* discard_slab(): the pages go back to the buddy allocator */
static void discard_slab(struct buddy *b, struct slab *slab)
{
	struct kmem_cache *s = slab->cache;

	if (s) {
		slab_unlink(&s->slabs, slab);
		if (!slab->inuse)
			s->nr_empty--;
	} else {
		slab_unlink(&b->sl->large, slab);
	}
	set_slab_of(b, slab, NULL);
	free_one_block(b, (uint32_t)slab->pfn, slab->order);
	free(slab->free_next);
	free(slab);
}

static int cache_alloc(struct buddy *b, struct kmem_cache *s, kmemspec_gfp_t gfp, uint64_t *addr)
{
	struct slab *slab;
	uint32_t idx;

	for (slab = s->slabs; slab; slab = slab->next)
		if (slab->freelist != OBJ_END)
			break;
	if (!slab) {
		slab = new_slab(b, s, gfp);
		if (!slab)
			return KMEMSPEC_NOMEM;
	}
	idx = slab->freelist;
	slab->freelist = slab->free_next[idx];
	slab->free_next[idx] = OBJ_USED;
	if (!slab->inuse++)
		s->nr_empty--;
	s->nr_live++;
	*addr = pfn_to_virt(b, slab->pfn) + idx * s->size + s->red;
	red_zone_fill(b, s, *addr, RED_ACTIVE);
	if (gfp & KMEMSPEC___GFP_ZERO)
		mem_zero(b, *addr - b->machine->page_offset, s->object_size);
	return KMEMSPEC_OK;
}

/* The object at addr, as SLAB_CONSISTENCY_CHECKS sees it: its index, or the misuse. */
static int slab_object(const struct slab *slab, uint64_t base, uint64_t addr, uint32_t *idx)
{
	uint64_t off = addr - base - slab->cache->red;

	if (addr < base + slab->cache->red || off % slab->cache->size || off / slab->cache->size >= slab->total)
		return KMEMSPEC_E_INVALID_FREE;
	*idx = (uint32_t)(off / slab->cache->size);
	if (slab->free_next[*idx] != OBJ_USED)
		return KMEMSPEC_E_DOUBLE_FREE;
	return KMEMSPEC_OK;
}

static int slab_free(struct buddy *b, struct slab *slab, uint64_t addr)
{
	struct kmem_cache *s = slab->cache;
	uint32_t idx;
	int ret = slab_object(slab, pfn_to_virt(b, slab->pfn), addr, &idx);

	if (ret != KMEMSPEC_OK)
		return ret;
	slab->free_next[idx] = slab->freelist;
	slab->freelist = idx;
	red_zone_fill(b, s, addr, RED_INACTIVE);
	s->nr_live--;
	if (!--slab->inuse && ++s->nr_empty > SLAB_KEEP_EMPTY)
		discard_slab(b, slab);
	return KMEMSPEC_OK;
}

/* kmalloc_slab(): kmalloc-<bucket> or dma-kmalloc-<bucket>, made on first use */
static struct kmem_cache *kmalloc_cache(struct buddy *b, uint64_t size, bool dma)
{
	uint64_t bucket = kmalloc_bucket(size);
	struct kmem_cache **slot = &b->sl->kmalloc_caches[dma][kmalloc_index(bucket)];

	if (!*slot)
		*slot = new_cache(b, bucket, bucket & -bucket, dma ? KMEMSPEC_SLAB_CACHE_DMA : 0, true);
	return *slot;
}

/* ___kmalloc_large_node(): a compound block of get_order(size) pages */
static int kmalloc_large(struct buddy *b, uint64_t size, kmemspec_gfp_t gfp, uint64_t *addr)
{
	uint32_t order = get_order(size, b->page_shift);
	struct slab *slab;
	uint64_t pfn;
	int ret;

	if (size > kmalloc_max_size(b))
		return KMEMSPEC_NOMEM;
	if (gfp & GFP_SLAB_BUG_MASK) {
		env_report(b, KMEMSPEC_E_UNEXPECTED_GFP);
		gfp &= ~GFP_SLAB_BUG_MASK;
	}
	slab = calloc(1, sizeof(*slab));
	if (!slab)
		return KMEMSPEC_NOMEM;
	ret = slab_alloc_pages(b, gfp | KMEMSPEC___GFP_COMP, order, &pfn);
	if (ret != KMEMSPEC_OK) {
		free(slab);
		return ret;
	}
	slab->pfn = pfn;
	slab->order = order;
	slab->inuse = slab->total = 1;
	slab_link(&b->sl->large, slab);
	set_slab_of(b, slab, slab);
	*addr = pfn_to_virt(b, pfn);
	return KMEMSPEC_OK;
}

static int do_kmalloc(struct buddy *b, uint64_t size, kmemspec_gfp_t gfp, uint64_t *addr)
{
	struct kmem_cache *s;

	if (!size) {
		*addr = ZERO_SIZE_PTR;
		return KMEMSPEC_OK;
	}
	if (size > kmalloc_max_cache_size(b))
		return kmalloc_large(b, size, gfp, addr);	/* the page allocator runs might_alloc() */
	might_alloc(b, gfp);
	if (gfp & GFP_SLAB_BUG_MASK) {
		env_report(b, KMEMSPEC_E_UNEXPECTED_GFP);
		gfp &= ~GFP_SLAB_BUG_MASK;
	}
	s = kmalloc_cache(b, size, gfp & KMEMSPEC___GFP_DMA);
	if (!s)
		return KMEMSPEC_NOMEM;
	return cache_alloc(b, s, gfp, addr);
}

static int do_ksize(const struct buddy *b, uint64_t addr, uint64_t *size)
{
	const struct slab *slab;
	uint64_t base;
	uint32_t idx;
	int ret;

	if (addr <= ZERO_SIZE_PTR) {
		*size = 0;
		return KMEMSPEC_OK;
	}
	slab = slab_at(b, addr);
	if (!slab)
		return KMEMSPEC_E_INVALID_FREE;
	base = pfn_to_virt(b, slab->pfn);
	if (!slab->cache) {
		if (addr != base)
			return KMEMSPEC_E_INVALID_FREE;
		*size = 1ull << (slab->order + b->page_shift);
		return KMEMSPEC_OK;
	}
	ret = slab_object(slab, base, addr, &idx);
	if (ret != KMEMSPEC_OK)
		return ret;
	*size = slab->cache->kmalloc ? slab->cache->size : slab->cache->object_size;
	return KMEMSPEC_OK;
}

static int do_kfree(struct buddy *b, uint64_t addr)
{
	struct slab *slab;

	if (addr <= ZERO_SIZE_PTR)
		return KMEMSPEC_OK;
	slab = slab_at(b, addr);
	if (!slab)
		return KMEMSPEC_E_INVALID_FREE;	/* "Not a kmalloc allocation" */
	if (slab->cache)
		return slab_free(b, slab, addr);
	if (addr != pfn_to_virt(b, slab->pfn))
		return KMEMSPEC_E_INVALID_FREE;
	discard_slab(b, slab);
	return KMEMSPEC_OK;
}

static bool slab_layer_init(struct buddy *b)
{
	b->sl = calloc(1, sizeof(*b->sl));
	if (!b->sl)
		return false;
	b->sl->nr_low = b->nr_pfns < b->machine->max_low_pfn ? b->nr_pfns : b->machine->max_low_pfn;
	/* calloc: untouched parts cost no memory */
	b->sl->slab_of = calloc(b->sl->nr_low + 1, sizeof(*b->sl->slab_of));
	return b->sl->slab_of != NULL;
}

static void free_slab_list(struct slab *slab)
{
	while (slab) {
		struct slab *next = slab->next;

		free(slab->free_next);
		free(slab);
		slab = next;
	}
}

static void slab_layer_destroy(struct buddy *b)
{
	struct slab_layer *sl = b->sl;

	if (!sl)
		return;
	for (uint64_t i = 0; i < sl->nr_caches; i++) {
		free_slab_list(sl->caches[i]->slabs);
		free(sl->caches[i]);
	}
	free_slab_list(sl->large);
	free(sl->caches);
	free(sl->slab_of);
	free(sl);
}

/* -- the ABI --------------------------------------------------------------- */

uint32_t kmemspec_abi_version(void)
{
	return KMEMSPEC_ABI_VERSION;
}

const char *kmemspec_capabilities(void)
{
	return "pages get_free_pages memory free_area kmalloc slab slab_info slab_debug";
}

const char *kmemspec_claims(void)
{
	return "BUDDY-DOUBLE-FREE BUDDY-BAD-FREE BUDDY-FREE-WRONG-ORDER BUDDY-FREE-INTERIOR "
	       "API-FREE-BAD-ADDRESS GFP-ZONE-BAD CTX-MIGHT-SLEEP "
	       "BUDDY-NO-SPURIOUS-FAIL WMARK-RESERVES-KEPT "
	       "KMALLOC-SIZE-CLASS KMALLOC-GFP-BUG SLAB-DOUBLE-FREE SLAB-INVALID-FREE "
	       "SLAB-WRONG-CACHE SLAB-DESTROY-BUSY SLAB-CACHE-MIGHT-SLEEP SLAB-PAGE-BAD-FREE SLAB-REDZONE-CHECK";
}

void kmemspec_destroy(void *iut)
{
	struct buddy *b = iut;

	if (!b)
		return;
	slab_layer_destroy(b);
	for (uint64_t c = 0; b->mem && c < b->nr_chunks; c++) {
		if (!b->mem[c])
			continue;
		for (uint32_t i = 0; i < MEM_CHUNK; i++)
			free(b->mem[c][i]);
		free(b->mem[c]);
	}
	free(b->mem);
	free(b->pages);
	free(b);
}

void *kmemspec_create(const struct kmemspec_machine *machine, const struct kmemspec_env *env)
{
	struct buddy *b;

	if (!machine || machine->abi_version != KMEMSPEC_ABI_VERSION ||
	    machine->max_page_order >= MAX_ORDERS || machine->page_shift < 10 || machine->page_shift > 16)
		return NULL;
	b = calloc(1, sizeof(*b));
	if (!b)
		return NULL;
	b->machine = machine;
	b->env = env;
	b->max_order = machine->max_page_order;
	b->page_shift = machine->page_shift;
	for (uint32_t i = 0; i < machine->nr_free_ranges; i++)
		if (machine->free_ranges[i].end_pfn > b->nr_pfns)
			b->nr_pfns = machine->free_ranges[i].end_pfn;
	if (b->nr_pfns >= NO_PFN || !setup_zones(b) || !setup_virt_addr_valid(b))
		goto fail;
	/* calloc: untouched parts of a large array cost no memory */
	b->pages = calloc(b->nr_pfns + 1, sizeof(*b->pages));
	b->nr_chunks = (b->nr_pfns >> MEM_CHUNK_SHIFT) + 1;
	b->mem = calloc(b->nr_chunks, sizeof(*b->mem));
	if (!b->pages || !b->mem || !slab_layer_init(b))
		goto fail;
	for (uint32_t i = 0; i < machine->nr_free_ranges; i++)
		free_range(b, machine->free_ranges[i].start_pfn, machine->free_ranges[i].end_pfn);
	return b;
fail:
	kmemspec_destroy(b);
	return NULL;
}

int kmemspec_alloc_pages(void *iut, kmemspec_gfp_t gfp, uint32_t order, uint64_t *pfn)
{
	return alloc_block(iut, gfp, order, false, pfn);
}

int kmemspec_free_pages(void *iut, uint64_t pfn, uint32_t order)
{
	struct buddy *b = iut;
	int ret = check_free(b, pfn, order);

	/* A slab page or a large kmalloc block: a "Bad page state" (page type set), kept. */
	if (ret == KMEMSPEC_OK && b->sl && pfn < b->sl->nr_low && b->sl->slab_of[pfn])
		return KMEMSPEC_E_BAD_FREE;
	if (ret == KMEMSPEC_OK)
		free_one_block(b, (uint32_t)pfn, order);
	return ret;
}

/* __get_free_pages(): no highmem, since the block needs a logical address. */
int kmemspec_get_free_pages(void *iut, kmemspec_gfp_t gfp, uint32_t order, uint64_t *addr)
{
	struct buddy *b = iut;
	uint64_t pfn;
	int ret = alloc_block(b, gfp & ~KMEMSPEC___GFP_HIGHMEM, order, true, &pfn);

	if (ret == KMEMSPEC_OK)
		*addr = b->machine->page_offset + (pfn << b->page_shift);
	return ret;
}

int kmemspec_free_pages_addr(void *iut, uint64_t addr, uint32_t order)
{
	struct buddy *b = iut;
	uint64_t pfn;

	if (!addr)
		return KMEMSPEC_OK;
	if (!virt_to_pfn(b, addr, &pfn))
		return KMEMSPEC_E_BAD_ADDRESS;
	return kmemspec_free_pages(b, pfn, order);
}

int kmemspec_read_phys(void *iut, uint64_t phys_addr, void *buf, uint64_t len)
{
	struct buddy *b = iut;
	uint64_t size = 1ull << b->page_shift;
	uint8_t *out = buf;

	while (len) {
		uint64_t off = phys_addr & (size - 1);
		uint64_t n = size - off < len ? size - off : len;
		const uint8_t *page = mem_page(b, phys_addr >> b->page_shift, false);

		if (page)
			memcpy(out, page + off, n);
		else
			memset(out, 0, n);
		out += n;
		phys_addr += n;
		len -= n;
	}
	return KMEMSPEC_OK;
}

int kmemspec_write_phys(void *iut, uint64_t phys_addr, const void *buf, uint64_t len)
{
	struct buddy *b = iut;
	uint64_t size = 1ull << b->page_shift;
	const uint8_t *in = buf;

	while (len) {
		uint64_t off = phys_addr & (size - 1);
		uint64_t n = size - off < len ? size - off : len;
		uint8_t *page = mem_page(b, phys_addr >> b->page_shift, true);

		/* beyond RAM nothing is stored; reads there see zeros */
		if (page)
			memcpy(page + off, in, n);
		in += n;
		phys_addr += n;
		len -= n;
	}
	return KMEMSPEC_OK;
}

int64_t kmemspec_free_area(void *iut, uint64_t *pfn, uint32_t *order, uint64_t cap)
{
	struct buddy *b = iut;
	uint64_t n = 0;

	for (int zt = 0; zt < KMEMSPEC_NR_ZONE_TYPES; zt++) {
		const struct zone *z = &b->zones[zt];

		for (uint32_t k = 0; k <= b->max_order; k++) {
			for (uint32_t p = z->free_area[k]; p != NO_PFN; p = b->pages[p].next) {
				if (n < cap) {
					pfn[n] = p;
					order[n] = k;
				}
				n++;
			}
		}
	}
	return (int64_t)n;
}

int kmemspec_kmalloc(void *iut, uint64_t size, kmemspec_gfp_t gfp, uint64_t *addr)
{
	return do_kmalloc(iut, size, gfp, addr);
}

int kmemspec_kzalloc(void *iut, uint64_t size, kmemspec_gfp_t gfp, uint64_t *addr)
{
	return do_kmalloc(iut, size, gfp | KMEMSPEC___GFP_ZERO, addr);
}

/* check_mul_overflow() on a BITS_PER_LONG size_t */
int kmemspec_kmalloc_array(void *iut, uint64_t n, uint64_t size, kmemspec_gfp_t gfp, uint64_t *addr)
{
	struct buddy *b = iut;
	uint64_t bytes;

	if (__builtin_mul_overflow(n, size, &bytes) || (b->addr_limit && bytes >= b->addr_limit))
		return KMEMSPEC_NOMEM;
	return do_kmalloc(b, bytes, gfp, addr);
}

/* __do_krealloc(): in place while the new size fits ksize(), else move */
int kmemspec_krealloc(void *iut, uint64_t addr, uint64_t size, kmemspec_gfp_t gfp, uint64_t *new_addr)
{
	struct buddy *b = iut;
	uint64_t old, new;
	int ret;

	if (addr <= ZERO_SIZE_PTR)
		return do_kmalloc(b, size, gfp, new_addr);
	ret = do_ksize(b, addr, &old);
	if (ret != KMEMSPEC_OK)
		return ret;
	if (!size) {
		ret = do_kfree(b, addr);
		if (ret == KMEMSPEC_OK)
			*new_addr = ZERO_SIZE_PTR;
		return ret;
	}
	if (size <= old) {
		*new_addr = addr;
		return KMEMSPEC_OK;
	}
	ret = do_kmalloc(b, size, gfp, &new);
	if (ret != KMEMSPEC_OK)
		return ret;
	mem_copy(b, new - b->machine->page_offset, addr - b->machine->page_offset, old);
	do_kfree(b, addr);
	*new_addr = new;
	return KMEMSPEC_OK;
}

int kmemspec_ksize(void *iut, uint64_t addr, uint64_t *size)
{
	return do_ksize(iut, addr, size);
}

int kmemspec_kfree(void *iut, uint64_t addr)
{
	return do_kfree(iut, addr);
}

int kmemspec_kmem_cache_create(void *iut, const char *name, uint64_t size, uint64_t align,
			       uint64_t flags, uint64_t *cache)
{
	struct buddy *b = iut;
	struct kmem_cache *s;

	(void)name;
	env_might_sleep(b);	/* mutex_lock(&slab_mutex) */
	if (!size || size > kmalloc_max_size(b))
		return KMEMSPEC_NOMEM;
	s = new_cache(b, size, align, flags, false);
	if (!s)
		return KMEMSPEC_NOMEM;
	*cache = s->id;
	return KMEMSPEC_OK;
}

int kmemspec_kmem_cache_alloc(void *iut, uint64_t cache, kmemspec_gfp_t gfp, uint64_t *addr)
{
	struct buddy *b = iut;
	struct kmem_cache *s = cache_lookup(b, cache);

	if (!s || s->kmalloc)
		return KMEMSPEC_NOMEM;
	might_alloc(b, gfp);
	return cache_alloc(b, s, gfp & ~GFP_SLAB_BUG_MASK, addr);
}

int kmemspec_kmem_cache_free(void *iut, uint64_t cache, uint64_t addr)
{
	struct buddy *b = iut;
	struct kmem_cache *s = cache_lookup(b, cache);
	struct slab *slab = slab_at(b, addr);

	if (!s || !slab || !slab->cache)
		return KMEMSPEC_E_INVALID_FREE;	/* "Object is not a Slab page!" */
	if (slab->cache != s)
		return KMEMSPEC_E_WRONG_CACHE;
	return slab_free(b, slab, addr);
}

int kmemspec_kmem_cache_destroy(void *iut, uint64_t cache)
{
	struct buddy *b = iut;
	struct kmem_cache *s = cache_lookup(b, cache);

	env_might_sleep(b);
	if (!s || s->kmalloc)
		return KMEMSPEC_OK;
	if (s->nr_live) {
		/* "Slab cache still has objects": the cache stays */
		env_report(b, KMEMSPEC_E_CACHE_BUSY);
		return KMEMSPEC_OK;
	}
	while (s->slabs)
		discard_slab(b, s->slabs);
	s->live = false;
	return KMEMSPEC_OK;
}

/* __kmem_cache_shrink(): every empty slab goes back */
int kmemspec_kmem_cache_shrink(void *iut, uint64_t cache)
{
	struct buddy *b = iut;
	struct kmem_cache *s = cache_lookup(b, cache);
	struct slab *slab, *next;

	env_might_sleep(b);
	if (!s)
		return KMEMSPEC_OK;
	for (slab = s->slabs; slab; slab = next) {
		next = slab->next;
		if (!slab->inuse)
			discard_slab(b, slab);
	}
	return KMEMSPEC_OK;
}

/* validate_slab_cache(): every object's red zones, live or free */
int kmemspec_kmem_cache_validate(void *iut, uint64_t cache)
{
	struct buddy *b = iut;
	struct kmem_cache *s = cache_lookup(b, cache);

	if (!s || !s->red)
		return KMEMSPEC_OK;
	for (const struct slab *slab = s->slabs; slab; slab = slab->next)
		for (uint32_t i = 0; i < slab->total; i++)
			red_zone_check(b, s, pfn_to_virt(b, slab->pfn) + i * s->size + s->red,
				       slab->free_next[i] == OBJ_USED ? RED_ACTIVE : RED_INACTIVE);
	return KMEMSPEC_OK;
}

static void slab_row(struct kmemspec_slab *slabs, uint64_t n, uint64_t cap, const struct slab *slab)
{
	if (n >= cap)
		return;
	slabs[n].cache = slab->cache && !slab->cache->kmalloc ? slab->cache->id : 0;
	slabs[n].pfn = slab->pfn;
	slabs[n].order = slab->order;
	slabs[n].inuse = slab->inuse;
	slabs[n].total = slab->total;
	slabs[n].reserved = 0;
}

int64_t kmemspec_slabs(void *iut, struct kmemspec_slab *slabs, uint64_t cap)
{
	struct buddy *b = iut;
	const struct slab_layer *sl = b->sl;
	uint64_t n = 0;

	for (uint64_t i = 0; i < sl->nr_caches; i++)
		for (const struct slab *slab = sl->caches[i]->slabs; slab; slab = slab->next)
			slab_row(slabs, n++, cap, slab);
	for (const struct slab *slab = sl->large; slab; slab = slab->next)
		slab_row(slabs, n++, cap, slab);
	return (int64_t)n;
}
