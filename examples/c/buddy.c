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

/* -- the ABI --------------------------------------------------------------- */

uint32_t kmemspec_abi_version(void)
{
	return KMEMSPEC_ABI_VERSION;
}

const char *kmemspec_capabilities(void)
{
	return "pages get_free_pages memory free_area";
}

const char *kmemspec_claims(void)
{
	return "BUDDY-DOUBLE-FREE BUDDY-BAD-FREE BUDDY-FREE-WRONG-ORDER BUDDY-FREE-INTERIOR "
	       "API-FREE-BAD-ADDRESS GFP-ZONE-BAD CTX-MIGHT-SLEEP "
	       "BUDDY-NO-SPURIOUS-FAIL WMARK-RESERVES-KEPT";
}

void kmemspec_destroy(void *iut)
{
	struct buddy *b = iut;

	if (!b)
		return;
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
	if (!b->pages || !b->mem)
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
