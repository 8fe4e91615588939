// SPDX-License-Identifier: MIT
/*
 * bitmap_stdio.c - a bitmap page allocator speaking kmemspec's JSON lines
 * protocol (docs/protocol.md, "Any language") on stdin and stdout.
 *
 * Not a buddy allocator: each zone keeps one bit per page (1 = free), and an
 * allocation scans for the highest-addressed naturally aligned run of
 * 2^order free pages, from the top of the highest eligible zone down. That
 * costs O(pages / 64) per call, which is fine for the tiny machines. The
 * zonelist, watermarks and misuse checks are the kernel's, as in buddy.c;
 * free_area is recomputed from the bitmap.
 *
 * Build with -DSEEDED_BUG for a variant whose free_pages() leaves the last
 * page of an order > 0 block marked in use (caught by INTROSPECT-FREE-AREA,
 * or BUDDY-NO-SPURIOUS-FAIL when memory runs short).
 */
#define _POSIX_C_SOURCE 200809L

#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NR_ZONES	5	/* DMA, DMA32, NORMAL, HIGHMEM, MOVABLE */
#define ZONE_NORMAL	2
#define ZONE_MOVABLE	4
#define NO_PFN		UINT64_MAX
#define MAX_DEPTH	32

/* include/linux/gfp_types.h */
#define GFP_ZONEMASK		0x0fu
#define GFP_HIGH		0x20u
#define GFP_ZERO		0x100u
#define GFP_DIRECT_RECLAIM	0x400u
#define GFP_NOFAIL		0x8000u
#define GFP_MEMALLOC		0x20000u
#define GFP_COMP		0x40000u
#define GFP_NOMEMALLOC		0x80000u

/* GFP_ZONE_TABLE by gfp & GFP_ZONEMASK; -1 marks GFP_ZONE_BAD. */
static const int8_t gfp_zone_table[16] = {
	2, 0, 3, -1, 1, -1, -1, -1, 2, 0, 4, -1, 1, -1, -1, -1,
};

static const char *const zone_names[NR_ZONES] = { "DMA", "DMA32", "NORMAL", "HIGHMEM", "MOVABLE" };

/* -- a JSON reader, just enough for the protocol ---------------------------- */

enum jtype { J_NULL, J_BOOL, J_NUM, J_STR, J_ARR, J_OBJ };

struct json {
	enum jtype type;
	bool neg;		/* J_NUM: below zero */
	bool integral;		/* J_NUM: an integer that fits 64 bits */
	bool truth;		/* J_BOOL */
	uint64_t u;		/* J_NUM: the magnitude */
	char *str;		/* J_STR, NUL-terminated */
	size_t len;		/* J_ARR, J_OBJ: members */
	struct json *items;
	char **keys;		/* J_OBJ */
};

struct parser {
	const char *s;
	const char *end;
	int depth;
};

static bool parse_value(struct parser *p, struct json *v);

static void skip_ws(struct parser *p)
{
	while (p->s < p->end && (*p->s == ' ' || *p->s == '\t' || *p->s == '\n' || *p->s == '\r'))
		p->s++;
}

static bool eat(struct parser *p, char c)
{
	skip_ws(p);
	if (p->s < p->end && *p->s == c) {
		p->s++;
		return true;
	}
	return false;
}

static bool parse_word(struct parser *p, const char *word)
{
	size_t n = strlen(word);

	if ((size_t)(p->end - p->s) < n || memcmp(p->s, word, n))
		return false;
	p->s += n;
	return true;
}

static int hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static bool parse_hex4(struct parser *p, uint32_t *cp)
{
	*cp = 0;
	if (p->end - p->s < 4)
		return false;
	for (int i = 0; i < 4; i++) {
		int d = hex_digit(*p->s++);

		if (d < 0)
			return false;
		*cp = *cp << 4 | (uint32_t)d;
	}
	return true;
}

static char *put_utf8(char *out, uint32_t cp)
{
	if (cp < 0x80) {
		*out++ = (char)cp;
	} else if (cp < 0x800) {
		*out++ = (char)(0xc0 | cp >> 6);
		*out++ = (char)(0x80 | (cp & 0x3f));
	} else if (cp < 0x10000) {
		*out++ = (char)(0xe0 | cp >> 12);
		*out++ = (char)(0x80 | ((cp >> 6) & 0x3f));
		*out++ = (char)(0x80 | (cp & 0x3f));
	} else {
		*out++ = (char)(0xf0 | cp >> 18);
		*out++ = (char)(0x80 | ((cp >> 12) & 0x3f));
		*out++ = (char)(0x80 | ((cp >> 6) & 0x3f));
		*out++ = (char)(0x80 | (cp & 0x3f));
	}
	return out;
}

/* Decoded text is never longer than its escaped form, so one buffer of that size does. */
static bool parse_string(struct parser *p, char **str)
{
	const char *start;
	char *out;

	if (!eat(p, '"'))
		return false;
	start = p->s;
	while (p->s < p->end && *p->s != '"')
		p->s += *p->s == '\\' ? 2 : 1;
	if (p->s >= p->end)
		return false;
	out = *str = malloc((size_t)(p->s - start) + 1);
	if (!out)
		return false;
	for (p->s = start; *p->s != '"';) {
		char c = *p->s++;
		uint32_t cp, lo;

		if (c != '\\') {
			*out++ = c;
			continue;
		}
		switch ((c = *p->s++)) {
		case 'b': *out++ = '\b'; break;
		case 'f': *out++ = '\f'; break;
		case 'n': *out++ = '\n'; break;
		case 'r': *out++ = '\r'; break;
		case 't': *out++ = '\t'; break;
		case 'u':
			if (!parse_hex4(p, &cp))
				return false;
			if (cp >= 0xd800 && cp < 0xdc00 && p->end - p->s >= 6 &&
			    p->s[0] == '\\' && p->s[1] == 'u') {
				p->s += 2;
				if (!parse_hex4(p, &lo))
					return false;
				cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
			}
			out = put_utf8(out, cp);
			break;
		default:
			*out++ = c;
		}
	}
	p->s++;
	*out = '\0';
	return true;
}

/* Integers keep all 64 bits (PAGE_OFFSET needs them); anything else is only skipped. */
static bool parse_number(struct parser *p, struct json *v)
{
	const char *start = p->s;

	v->type = J_NUM;
	v->integral = true;
	v->neg = p->s < p->end && *p->s == '-';
	if (v->neg)
		p->s++;
	for (; p->s < p->end && *p->s >= '0' && *p->s <= '9'; p->s++) {
		unsigned digit = (unsigned)(*p->s - '0');

		if (v->u > (UINT64_MAX - digit) / 10)
			v->integral = false;
		v->u = v->u * 10 + digit;
	}
	while (p->s < p->end && strchr(".eE+-0123456789", *p->s)) {
		v->integral = false;
		p->s++;
	}
	return p->s > start + v->neg;
}

static bool parse_members(struct parser *p, struct json *v, bool object, char close)
{
	size_t cap = 0;

	if (eat(p, close))
		return true;
	do {
		if (v->len == cap) {
			cap = cap ? 2 * cap : 8;
			v->items = realloc(v->items, cap * sizeof(*v->items));
			if (object)
				v->keys = realloc(v->keys, cap * sizeof(*v->keys));
			if (!v->items || (object && !v->keys))
				return false;
		}
		memset(&v->items[v->len], 0, sizeof(*v->items));
		if (object) {
			v->keys[v->len] = NULL;
			skip_ws(p);
			if (!parse_string(p, &v->keys[v->len++]) || !eat(p, ':'))
				return false;
		} else {
			v->len++;
		}
		if (!parse_value(p, &v->items[v->len - 1]))
			return false;
	} while (eat(p, ','));
	return eat(p, close);
}

static bool parse_value(struct parser *p, struct json *v)
{
	bool ok;

	memset(v, 0, sizeof(*v));
	skip_ws(p);
	if (p->s >= p->end)
		return false;
	switch (*p->s) {
	case '{':
	case '[':
		if (++p->depth > MAX_DEPTH)
			return false;
		v->type = *p->s == '{' ? J_OBJ : J_ARR;
		p->s++;
		ok = parse_members(p, v, v->type == J_OBJ, v->type == J_OBJ ? '}' : ']');
		p->depth--;
		return ok;
	case '"':
		v->type = J_STR;
		return parse_string(p, &v->str);
	case 't':
		v->type = J_BOOL;
		v->truth = true;
		return parse_word(p, "true");
	case 'f':
		v->type = J_BOOL;
		return parse_word(p, "false");
	case 'n':
		return parse_word(p, "null");
	default:
		return parse_number(p, v);
	}
}

static void json_free(struct json *v)
{
	for (size_t i = 0; i < v->len; i++) {
		json_free(&v->items[i]);
		if (v->type == J_OBJ)
			free(v->keys[i]);
	}
	free(v->items);
	free(v->keys);
	free(v->str);
	memset(v, 0, sizeof(*v));
}

static bool json_parse(const char *text, size_t len, struct json *v)
{
	struct parser p = { text, text + len, 0 };

	if (!parse_value(&p, v)) {
		json_free(v);
		return false;
	}
	skip_ws(&p);
	return p.s == p.end;
}

static const struct json *json_get(const struct json *obj, const char *key)
{
	if (!obj || obj->type != J_OBJ)
		return NULL;
	for (size_t i = 0; i < obj->len; i++)
		if (obj->keys[i] && !strcmp(obj->keys[i], key))
			return &obj->items[i];
	return NULL;
}

static bool json_u64(const struct json *v, uint64_t *out)
{
	if (!v || v->type != J_NUM || !v->integral || (v->neg && v->u))
		return false;
	*out = v->u;
	return true;
}

static const struct json *json_at(const struct json *arr, size_t i)
{
	return arr && arr->type == J_ARR && i < arr->len ? &arr->items[i] : NULL;
}

/* -- replies ---------------------------------------------------------------- */

struct sbuf {
	char *p;
	size_t len;
	size_t cap;
};

static void sb_grow(struct sbuf *sb, size_t more)
{
	if (sb->len + more + 1 <= sb->cap)
		return;
	while (sb->len + more + 1 > sb->cap)
		sb->cap = sb->cap ? 2 * sb->cap : 256;
	sb->p = realloc(sb->p, sb->cap);
	if (!sb->p) {
		fprintf(stderr, "bitmap_stdio: out of memory\n");
		exit(1);
	}
}

static void sb_printf(struct sbuf *sb, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	sb_grow(sb, (size_t)n);
	va_start(ap, fmt);
	vsnprintf(sb->p + sb->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	sb->len += (size_t)n;
}

/* -- the allocator ----------------------------------------------------------- */

enum status {
	OK,
	NOMEM,
	E_INVALID_GFP,
	E_DOUBLE_FREE,
	E_BAD_FREE,
	E_FREE_WRONG_ORDER,
	E_FREE_INTERIOR,
};

static const char *const violation_names[] = {
	[E_INVALID_GFP] = "InvalidGfp",
	[E_DOUBLE_FREE] = "DoubleFree",
	[E_BAD_FREE] = "BadFree",
	[E_FREE_WRONG_ORDER] = "FreeWrongOrder",
	[E_FREE_INTERIOR] = "FreeInterior",
};

struct zone {
	bool configured;
	bool populated;
	uint64_t start_pfn;
	uint64_t end_pfn;
	uint64_t wmark_min;
	uint64_t wmark_low;
	uint64_t lowmem_reserve[NR_ZONES];
	uint64_t nr_free;
	uint64_t first_word;	/* free_map[0] holds PFNs first_word * 64 .. + 63 */
	uint64_t nr_words;
	uint64_t *free_map;	/* bit set: the page is free; bits outside the zone stay clear */
};

struct range {
	uint64_t start;
	uint64_t end;
};

/* head[pfn]: 0, or a live block's order + 1, plus HEAD_COMP for __GFP_COMP */
#define HEAD_ORDER	0x7f
#define HEAD_COMP	0x80

struct mem_slot {
	uint64_t pfn;
	uint8_t *data;		/* NULL: an empty slot */
};

struct allocator {
	bool ready;
	uint32_t max_order;
	uint32_t page_shift;
	uint64_t nr_pfns;	/* head[] covers [0, nr_pfns) */
	uint8_t *head;
	struct zone zones[NR_ZONES];
	struct range *free_ranges;
	size_t nr_free_ranges;
	/* simulated memory: pfn -> page, open addressing, pages never leave */
	struct mem_slot *mem;
	size_t mem_cap;
	size_t mem_used;
	/* what the current call did to the kernel around it */
	bool might_sleep;
	bool slept;
	char why[160];
};

/* Aligned runs of 2^order pages inside one word start at these bits. */
static const uint64_t run_start[6] = {
	~0ull, 0x5555555555555555ull, 0x1111111111111111ull,
	0x0101010101010101ull, 0x0001000100010001ull, 0x0000000100000001ull,
};

static uint64_t *map_word(const struct zone *z, uint64_t pfn)
{
	return &z->free_map[(pfn >> 6) - z->first_word];
}

static bool page_free(const struct zone *z, uint64_t pfn)
{
	return *map_word(z, pfn) >> (pfn & 63) & 1;
}

/* Is the aligned block [pfn, pfn + 2^order) free? */
static bool run_free(const struct zone *z, uint64_t pfn, uint32_t order)
{
	if (order < 6) {
		uint64_t mask = ((1ull << (1u << order)) - 1) << (pfn & 63);

		return (*map_word(z, pfn) & mask) == mask;
	}
	for (uint64_t i = 0; i < 1ull << (order - 6); i++)
		if (map_word(z, pfn)[i] != ~0ull)
			return false;
	return true;
}

static void mark_pages(struct zone *z, uint64_t pfn, uint64_t nr, bool free)
{
	for (uint64_t p = pfn; p < pfn + nr; p++) {
		if (free) {
			*map_word(z, p) |= 1ull << (p & 63);
			z->nr_free++;
		} else {
			*map_word(z, p) &= ~(1ull << (p & 63));
			z->nr_free--;
		}
	}
}

/* The highest-addressed free aligned block of 2^order pages in z, or NO_PFN. */
static uint64_t find_run(const struct zone *z, uint32_t order)
{
	uint64_t size = 1ull << order;
	uint64_t pfn;

	if (!z->populated || z->end_pfn - z->start_pfn < size)
		return NO_PFN;
	if (order < 6) {
		for (uint64_t i = z->nr_words; i-- > 0;) {
			uint64_t m = z->free_map[i];

			for (uint32_t s = 0; s < order && m; s++)
				m &= m >> (1u << s);
			m &= run_start[order];
			if (m)
				return ((z->first_word + i) << 6) + 63 - (uint64_t)__builtin_clzll(m);
		}
		return NO_PFN;
	}
	for (pfn = (z->end_pfn - size) & ~(size - 1); pfn >= z->start_pfn; pfn -= size) {
		if (run_free(z, pfn, order))
			return pfn;
		if (pfn < size)
			break;
	}
	return NO_PFN;
}

static struct zone *page_zone(struct allocator *a, uint64_t pfn)
{
	for (int zt = 0; zt < NR_ZONES; zt++) {
		struct zone *z = &a->zones[zt];

		if (z->populated && z->start_pfn <= pfn && pfn < z->end_pfn)
			return z;
	}
	return NULL;
}

/* -- simulated memory --------------------------------------------------------- */

static struct mem_slot *mem_slot(struct allocator *a, uint64_t pfn)
{
	size_t i = (size_t)(pfn * 0x9e3779b97f4a7c15ull) & (a->mem_cap - 1);

	while (a->mem[i].data && a->mem[i].pfn != pfn)
		i = (i + 1) & (a->mem_cap - 1);
	return &a->mem[i];
}

static void mem_grow(struct allocator *a)
{
	struct mem_slot *old = a->mem;
	size_t old_cap = a->mem_cap;

	a->mem_cap = old_cap ? 2 * old_cap : 64;
	a->mem = calloc(a->mem_cap, sizeof(*a->mem));
	if (!a->mem) {
		fprintf(stderr, "bitmap_stdio: out of memory\n");
		exit(1);
	}
	for (size_t i = 0; i < old_cap; i++)
		if (old[i].data)
			*mem_slot(a, old[i].pfn) = old[i];
	free(old);
}

static uint8_t *mem_page(struct allocator *a, uint64_t pfn, bool create)
{
	struct mem_slot *slot;

	if (!a->mem_cap) {
		if (!create)
			return NULL;
		mem_grow(a);
	}
	slot = mem_slot(a, pfn);
	if (slot->data || !create)
		return slot->data;
	if (2 * (a->mem_used + 1) > a->mem_cap) {
		mem_grow(a);
		slot = mem_slot(a, pfn);
	}
	slot->pfn = pfn;
	slot->data = calloc(1, (size_t)1 << a->page_shift);
	if (!slot->data) {
		fprintf(stderr, "bitmap_stdio: out of memory\n");
		exit(1);
	}
	a->mem_used++;
	return slot->data;
}

static void clear_block(struct allocator *a, uint64_t pfn, uint32_t order)
{
	for (uint64_t p = pfn; p < pfn + (1ull << order); p++) {
		uint8_t *page = mem_page(a, p, false);

		if (page)
			memset(page, 0, (size_t)1 << a->page_shift);
	}
}

static void reset(struct allocator *a)
{
	for (int zt = 0; zt < NR_ZONES; zt++)
		free(a->zones[zt].free_map);
	for (size_t i = 0; i < a->mem_cap; i++)
		free(a->mem[i].data);
	free(a->mem);
	free(a->head);
	free(a->free_ranges);
	memset(a, 0, sizeof(*a));
}

/* -- allocation ---------------------------------------------------------------- */

static int gfp_zone(const struct allocator *a, uint64_t gfp)
{
	int zt = gfp_zone_table[gfp & GFP_ZONEMASK];

	/* OPT_ZONE_* fall back to NORMAL; ZONE_MOVABLE always exists */
	if (zt != ZONE_MOVABLE && !a->zones[zt].configured)
		return ZONE_NORMAL;
	return zt;
}

static uint64_t reserve_min(uint64_t mark, uint64_t gfp)
{
	if (gfp & GFP_HIGH) {
		mark -= mark / 2;
		if (!(gfp & (GFP_DIRECT_RECLAIM | GFP_NOMEMALLOC)))
			mark -= mark / 4;
	}
	return mark;
}

enum { WMARK_LOW, WMARK_MIN, WMARK_NONE };

/* One pass down the zonelist; on success *pfn is the block to take. */
static struct zone *zonelist_walk(struct allocator *a, uint64_t gfp, uint32_t order, int which, uint64_t *pfn)
{
	int highest = gfp_zone(a, gfp);

	for (int zt = highest; zt >= 0; zt--) {
		struct zone *z = &a->zones[zt];
		uint64_t mark = which == WMARK_LOW ? z->wmark_low : reserve_min(z->wmark_min, gfp);

		mark += z->lowmem_reserve[highest];
		if (which != WMARK_NONE && z->nr_free <= mark + (1ull << order) - 1)
			continue;
		*pfn = find_run(z, order);
		if (*pfn != NO_PFN)
			return z;
	}
	return NULL;
}

/* Low watermark, then min with reserves, then no watermarks for MEMALLOC, or NOFAIL after "reclaim". */
static struct zone *pick_zone(struct allocator *a, uint64_t gfp, uint32_t order, uint64_t *pfn)
{
	struct zone *z = zonelist_walk(a, gfp, order, WMARK_LOW, pfn);

	if (!z)
		z = zonelist_walk(a, gfp, order, WMARK_MIN, pfn);
	if (z)
		return z;
	if ((gfp & GFP_MEMALLOC) && !(gfp & GFP_NOMEMALLOC))
		return zonelist_walk(a, gfp, order, WMARK_NONE, pfn);
	if (!(gfp & GFP_DIRECT_RECLAIM))
		return NULL;
	a->slept = true;	/* direct reclaim: nothing to reclaim in a model */
	if (gfp & GFP_NOFAIL)
		return zonelist_walk(a, gfp, order, WMARK_NONE, pfn);
	return NULL;
}

static int alloc_pages(struct allocator *a, uint64_t gfp, uint64_t order, uint64_t *out)
{
	struct zone *z;
	uint64_t pfn;

	if (order > a->max_order)
		return NOMEM;
	if (gfp_zone_table[gfp & GFP_ZONEMASK] < 0) {
		snprintf(a->why, sizeof(a->why), "gfp %#" PRIx64 " sets more than one zone modifier", gfp);
		return E_INVALID_GFP;
	}
	a->might_sleep = gfp & GFP_DIRECT_RECLAIM;
	z = pick_zone(a, gfp, (uint32_t)order, &pfn);
	if (!z)
		return NOMEM;
	mark_pages(z, pfn, 1ull << order, false);
	a->head[pfn] = (uint8_t)((order + 1) | (gfp & GFP_COMP ? HEAD_COMP : 0));
	if (gfp & GFP_ZERO)
		clear_block(a, pfn, (uint32_t)order);
	*out = pfn;
	return OK;
}

/* -- free ------------------------------------------------------------------------ */

static bool pfn_usable(const struct allocator *a, uint64_t pfn)
{
	for (size_t i = 0; i < a->nr_free_ranges; i++)
		if (a->free_ranges[i].start <= pfn && pfn < a->free_ranges[i].end)
			return true;
	return false;
}

static int check_free(struct allocator *a, uint64_t pfn, uint64_t order)
{
	if (pfn < a->nr_pfns) {
		uint32_t live = a->head[pfn] & HEAD_ORDER;

		/* the kernel checks compound pages only; refusing the rest keeps the map sane */
		if (live) {
			if (live - 1 == order)
				return OK;
			snprintf(a->why, sizeof(a->why), "pfn %#" PRIx64 " heads a live order-%u block, freed as order %" PRIu64,
				 pfn, live - 1, order);
			return E_FREE_WRONG_ORDER;
		}
		for (uint32_t k = 1; k <= a->max_order; k++) {
			uint64_t head = pfn & ~((1ull << k) - 1);

			live = a->head[head] & HEAD_ORDER;
			if (live && live - 1 >= k) {
				snprintf(a->why, sizeof(a->why), "pfn %#" PRIx64 " is inside the live order-%u block at pfn %#" PRIx64,
					 pfn, live - 1, head);
				return E_FREE_INTERIOR;
			}
		}
	}
	if (!pfn_usable(a, pfn)) {
		snprintf(a->why, sizeof(a->why),
			 "pfn %#" PRIx64 " was never handed to the allocator (reserved or a hole)", pfn);
		return E_BAD_FREE;
	}
	snprintf(a->why, sizeof(a->why), "pfn %#" PRIx64 " is already free", pfn);
	return E_DOUBLE_FREE;
}

static int free_pages(struct allocator *a, uint64_t pfn, uint64_t order)
{
	int ret = check_free(a, pfn, order);
	uint64_t nr;

	if (ret != OK)
		return ret;
	a->head[pfn] = 0;
	nr = 1ull << order;
#ifdef SEEDED_BUG
	/* off by one: the last page of a multi-page block stays in use */
	if (order > 0)
		nr--;
#endif
	mark_pages(page_zone(a, pfn), pfn, nr, true);
	return OK;
}

/* -- boot ---------------------------------------------------------------------------- */

static int zone_type(const struct json *v)
{
	uint64_t n;

	if (json_u64(v, &n))
		return n < NR_ZONES ? (int)n : -1;
	if (!v || v->type != J_STR)
		return -1;
	for (int zt = 0; zt < NR_ZONES; zt++) {
		const char *a = v->str, *b = zone_names[zt];

		while (*a && (*a | 0x20) == (*b | 0x20))
			a++, b++;
		if (!*a && !*b)
			return zt;
	}
	return -1;
}

static bool setup_zone(struct allocator *a, const struct json *jz)
{
	const struct json *wm = json_get(jz, "watermarks");
	const struct json *reserve = json_get(jz, "lowmem_reserve");
	int zt = zone_type(json_get(jz, "type"));
	struct zone *z;

	if (zt < 0)
		return false;
	z = &a->zones[zt];
	z->configured = true;
	if (!json_u64(json_get(jz, "start_pfn"), &z->start_pfn) || !json_u64(json_get(jz, "end_pfn"), &z->end_pfn))
		return false;
	/* absent watermarks are zero */
	json_u64(json_at(wm, 0), &z->wmark_min);
	json_u64(json_at(wm, 1), &z->wmark_low);
	for (int i = 0; i < NR_ZONES; i++)
		json_u64(json_at(reserve, (size_t)i), &z->lowmem_reserve[i]);
	z->populated = z->end_pfn > z->start_pfn;
	if (!z->populated)
		return true;
	z->first_word = z->start_pfn >> 6;
	z->nr_words = ((z->end_pfn - 1) >> 6) - z->first_word + 1;
	z->free_map = calloc(z->nr_words, sizeof(*z->free_map));
	return z->free_map != NULL;
}

/* Free ranges are handed over page by page: a bitmap has no blocks to shape. */
static bool setup_free_ranges(struct allocator *a, const struct json *ranges)
{
	if (!ranges || ranges->type != J_ARR)
		return false;
	a->free_ranges = calloc(ranges->len + 1, sizeof(*a->free_ranges));
	if (!a->free_ranges)
		return false;
	for (size_t i = 0; i < ranges->len; i++) {
		struct range *r = &a->free_ranges[a->nr_free_ranges++];

		if (!json_u64(json_at(&ranges->items[i], 0), &r->start) ||
		    !json_u64(json_at(&ranges->items[i], 1), &r->end) || r->start > r->end)
			return false;
		if (r->end > a->nr_pfns)
			a->nr_pfns = r->end;
	}
	a->head = calloc(a->nr_pfns + 1, 1);
	if (!a->head)
		return false;
	for (size_t i = 0; i < a->nr_free_ranges; i++) {
		for (int zt = 0; zt < NR_ZONES; zt++) {
			struct zone *z = &a->zones[zt];
			uint64_t start = a->free_ranges[i].start > z->start_pfn ? a->free_ranges[i].start : z->start_pfn;
			uint64_t end = a->free_ranges[i].end < z->end_pfn ? a->free_ranges[i].end : z->end_pfn;

			if (z->populated && start < end)
				mark_pages(z, start, end - start, true);
		}
	}
	return true;
}

static bool init_machine(struct allocator *a, const struct json *m)
{
	const struct json *zones = json_get(m, "zones");
	uint64_t v;

	reset(a);
	a->page_shift = 12;
	if (json_u64(json_get(m, "page_shift"), &v))
		a->page_shift = (uint32_t)v;
	if (!json_u64(json_get(m, "max_page_order"), &v) || v > 62 || a->page_shift < 10 || a->page_shift > 16)
		return false;
	a->max_order = (uint32_t)v;
	if (!zones || zones->type != J_ARR)
		return false;
	for (size_t i = 0; i < zones->len; i++)
		if (!setup_zone(a, &zones->items[i]))
			return false;
	if (!setup_free_ranges(a, json_get(m, "free_ranges")))
		return false;
	a->ready = true;
	return true;
}

/* -- the protocol -------------------------------------------------------------------- */

static void reply_status(struct allocator *a, struct sbuf *out, int ret, uint64_t result, bool has_result)
{
	if (ret > NOMEM) {
		sb_printf(out, "{\"error\": \"%s\", \"message\": \"%s\"", violation_names[ret], a->why);
	} else if (ret == OK && has_result) {
		sb_printf(out, "{\"result\": %" PRIu64, result);
	} else {
		sb_printf(out, "{\"result\": null");
	}
	if (a->might_sleep)
		sb_printf(out, ", \"might_sleep\": 1");
	if (a->slept)
		sb_printf(out, ", \"slept\": 1");
	sb_printf(out, "}");
}

static void reply_free_area(struct allocator *a, struct sbuf *out)
{
	const char *sep = "";

	sb_printf(out, "{\"result\": [");
	for (int zt = 0; zt < NR_ZONES; zt++) {
		const struct zone *z = &a->zones[zt];
		uint64_t pfn = z->start_pfn;

		while (z->populated && pfn < z->end_pfn) {
			uint32_t order = a->max_order;

			if (!*map_word(z, pfn)) {
				pfn = (pfn | 63) + 1;
				continue;
			}
			if (!page_free(z, pfn)) {
				pfn++;
				continue;
			}
			/* the largest aligned free block starting here */
			if (pfn && (uint32_t)__builtin_ctzll(pfn) < order)
				order = (uint32_t)__builtin_ctzll(pfn);
			while (pfn + (1ull << order) > z->end_pfn || !run_free(z, pfn, order))
				order--;
			sb_printf(out, "%s[%" PRIu64 ", %u]", sep, pfn, order);
			sep = ", ";
			pfn += 1ull << order;
		}
	}
	sb_printf(out, "]}");
}

static void reply_read_phys(struct allocator *a, struct sbuf *out, uint64_t addr, uint64_t len)
{
	uint64_t size = 1ull << a->page_shift;

	sb_printf(out, "{\"result\": \"");
	sb_grow(out, 2 * len);
	while (len) {
		uint64_t off = addr & (size - 1);
		uint64_t n = size - off < len ? size - off : len;
		const uint8_t *page = mem_page(a, addr >> a->page_shift, false);

		for (uint64_t i = 0; i < n; i++) {
			uint8_t byte = page ? page[off + i] : 0;

			out->p[out->len++] = "0123456789abcdef"[byte >> 4];
			out->p[out->len++] = "0123456789abcdef"[byte & 15];
		}
		addr += n;
		len -= n;
	}
	sb_printf(out, "\"}");
}

static bool write_phys(struct allocator *a, uint64_t addr, const struct json *data)
{
	uint64_t size = 1ull << a->page_shift;

	if (!data || data->type != J_STR || strlen(data->str) % 2)
		return false;
	for (const char *s = data->str; *s; s += 2, addr++) {
		int hi = hex_digit(s[0]), lo = hex_digit(s[1]);

		if (hi < 0 || lo < 0)
			return false;
		mem_page(a, addr >> a->page_shift, true)[addr & (size - 1)] = (uint8_t)(hi << 4 | lo);
	}
	return true;
}

static void reply_hello(struct sbuf *out)
{
	sb_printf(out, "{\"protocol\": 1, \"name\": \"bitmap_stdio%s\", "
		  "\"capabilities\": [\"pages\", \"memory\", \"free_area\"], "
		  "\"claims\": [\"BUDDY-DOUBLE-FREE\", \"BUDDY-BAD-FREE\", \"BUDDY-FREE-WRONG-ORDER\", "
		  "\"BUDDY-FREE-INTERIOR\", \"GFP-ZONE-BAD\", \"CTX-MIGHT-SLEEP\", "
		  "\"BUDDY-NO-SPURIOUS-FAIL\", \"WMARK-RESERVES-KEPT\"]}",
#ifdef SEEDED_BUG
		  "-bug"
#else
		  ""
#endif
		  );
}

static void die(const char *what, const char *op)
{
	fprintf(stderr, "bitmap_stdio: %s%s%s\n", what, op ? ": " : "", op ? op : "");
	exit(2);
}

/* One request, one reply; false after "bye". */
static bool handle(struct allocator *a, const struct json *req, struct sbuf *out)
{
	const struct json *jop = json_get(req, "op");
	const char *op = jop && jop->type == J_STR ? jop->str : NULL;
	uint64_t x, order, result = 0;
	int ret;

	if (!op)
		die("a request without \"op\"", NULL);
	a->might_sleep = a->slept = false;
	if (!strcmp(op, "hello")) {
		reply_hello(out);
		return true;
	}
	if (!strcmp(op, "bye"))
		return false;
	if (!strcmp(op, "init")) {
		if (!init_machine(a, json_get(req, "machine")))
			die("init: cannot build the allocator from this machine", NULL);
		sb_printf(out, "{\"result\": null}");
		return true;
	}
	if (!a->ready)
		die("an operation before init", op);
	if (!strcmp(op, "alloc_pages")) {
		if (!json_u64(json_get(req, "gfp"), &x))
			die("bad gfp", op);
		if (!json_u64(json_get(req, "order"), &order))
			order = UINT64_MAX;	/* a negative order: NULL, like a huge one */
		ret = alloc_pages(a, x, order, &result);
		reply_status(a, out, ret, result, true);
	} else if (!strcmp(op, "free_pages")) {
		if (!json_u64(json_get(req, "pfn"), &x))
			x = NO_PFN;		/* a negative pfn has no page: BadFree */
		if (!json_u64(json_get(req, "order"), &order))
			order = UINT64_MAX;
		reply_status(a, out, free_pages(a, x, order), 0, false);
	} else if (!strcmp(op, "free_area")) {
		reply_free_area(a, out);
	} else if (!strcmp(op, "read_phys")) {
		if (!json_u64(json_get(req, "phys_addr"), &x) || !json_u64(json_get(req, "length"), &order))
			die("bad phys_addr or length", op);
		reply_read_phys(a, out, x, order);
	} else if (!strcmp(op, "write_phys")) {
		if (!json_u64(json_get(req, "phys_addr"), &x) || !write_phys(a, x, json_get(req, "data")))
			die("bad phys_addr or data", op);
		sb_printf(out, "{\"result\": null}");
	} else {
		die("unknown operation", op);
	}
	return true;
}

int main(void)
{
	struct allocator a = { 0 };
	struct sbuf out = { 0 };
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;

	while ((n = getline(&line, &cap, stdin)) != -1) {
		struct json req;

		if (strspn(line, " \t\r\n") == (size_t)n)
			continue;
		if (!json_parse(line, (size_t)n, &req))
			die("a request that is not JSON", NULL);
		out.len = 0;
		if (!handle(&a, &req, &out)) {
			json_free(&req);
			break;
		}
		json_free(&req);
		sb_printf(&out, "\n");
		fwrite(out.p, 1, out.len, stdout);
		fflush(stdout);
	}
	reset(&a);
	free(out.p);
	free(line);
	return 0;
}
