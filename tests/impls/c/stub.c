/* Libraries that are not quite kmemspec implementations, for the loader's error messages. */
#include <stddef.h>
#include "kmemspec_iut.h"

#ifndef STUB_ABI
#define STUB_ABI KMEMSPEC_ABI_VERSION
#endif

uint32_t kmemspec_abi_version(void) { return STUB_ABI; }
const char *kmemspec_capabilities(void) { return STUB_CAPS; }
const char *kmemspec_claims(void) { return ""; }
void *kmemspec_create(const struct kmemspec_machine *m, const struct kmemspec_env *e) { (void)m; (void)e; return NULL; }
void kmemspec_destroy(void *iut) { (void)iut; }
int kmemspec_alloc_pages(void *iut, kmemspec_gfp_t gfp, uint32_t order, uint64_t *pfn)
{
	(void)iut; (void)gfp; (void)order; (void)pfn;
	return KMEMSPEC_NOMEM;
}
#ifndef STUB_NO_FREE
int kmemspec_free_pages(void *iut, uint64_t pfn, uint32_t order) { (void)iut; (void)pfn; (void)order; return 0; }
#endif
