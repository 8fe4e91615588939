/* The C example allocator with a SIGSEGV at the first order-1 allocation: what --isolate is for. */
#define kmemspec_alloc_pages buddy_alloc_pages
#include "buddy.c"
#undef kmemspec_alloc_pages

int kmemspec_alloc_pages(void *iut, kmemspec_gfp_t gfp, uint32_t order, uint64_t *pfn);

int kmemspec_alloc_pages(void *iut, kmemspec_gfp_t gfp, uint32_t order, uint64_t *pfn)
{
	if (order == 1)
		*(volatile int *)0 = 0;
	return buddy_alloc_pages(iut, gfp, order, pfn);
}
