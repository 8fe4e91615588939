/* Prints the ABI's struct layout as JSON, for tests/test_c_abi.py to compare with the ctypes side. */
#include <stddef.h>
#include <stdio.h>
#include "kmemspec_iut.h"

#define FIELD(s, f) printf("\"%s.%s\": [%zu, %zu],\n", #s, #f, offsetof(struct s, f), sizeof(((struct s *)0)->f))

int main(void)
{
	printf("{\n");
	FIELD(kmemspec_range, start_pfn);
	FIELD(kmemspec_range, end_pfn);
	FIELD(kmemspec_zone, zone_type);
	FIELD(kmemspec_zone, start_pfn);
	FIELD(kmemspec_zone, end_pfn);
	FIELD(kmemspec_zone, watermark_min);
	FIELD(kmemspec_zone, watermark_high);
	FIELD(kmemspec_zone, lowmem_reserve);
	FIELD(kmemspec_machine, abi_version);
	FIELD(kmemspec_machine, page_shift);
	FIELD(kmemspec_machine, max_page_order);
	FIELD(kmemspec_machine, nr_zones);
	FIELD(kmemspec_machine, zones);
	FIELD(kmemspec_machine, page_offset);
	FIELD(kmemspec_machine, max_low_pfn);
	FIELD(kmemspec_machine, nr_free_ranges);
	FIELD(kmemspec_machine, free_ranges);
	FIELD(kmemspec_machine, json);
	FIELD(kmemspec_machine, word_bits);
	FIELD(kmemspec_machine, section_size_bits);
	FIELD(kmemspec_machine, phys_addr_bits);
	FIELD(kmemspec_machine, nr_ram);
	FIELD(kmemspec_machine, ram);
	FIELD(kmemspec_machine, nr_reserved);
	FIELD(kmemspec_machine, reserved);
	FIELD(kmemspec_env, opaque);
	FIELD(kmemspec_env, preempt_count);
	FIELD(kmemspec_env, might_sleep);
	FIELD(kmemspec_env, sleep);
	FIELD(kmemspec_env, report);
	FIELD(kmemspec_slab, cache);
	FIELD(kmemspec_slab, pfn);
	FIELD(kmemspec_slab, order);
	FIELD(kmemspec_slab, total);
	printf("\"sizeof.kmemspec_zone\": [0, %zu],\n", sizeof(struct kmemspec_zone));
	printf("\"sizeof.kmemspec_machine\": [0, %zu],\n", sizeof(struct kmemspec_machine));
	printf("\"sizeof.kmemspec_env\": [0, %zu]\n}\n", sizeof(struct kmemspec_env));
	return 0;
}
