"""A minimal page allocator plugged into kmemspec: `kmemspec check examples/my_allocator.py:make`.

First fit over a set of free PFNs: slow, but it keeps every rule it has to:
aligned blocks, one zone each, from the zone the GFP flags allow or a lower one.
"""

from kmemspec.refmodel.gfp import gfp_zone


class FirstFit:
    capabilities = frozenset({"pages"})  # alloc_pages + free_pages
    claims = frozenset()  # no misuse detection claimed: none is generated

    def __init__(self, machine, env):
        self.machine = machine
        self.free = {pfn for zone in machine.populated_zones
                     for r in machine.zone_free_ranges(zone) for pfn in range(r.start, r.end)}

    def alloc_pages(self, gfp, order):
        if order > self.machine.max_page_order:
            return None  # BUDDY-ORDER-LIMIT
        highest, n = gfp_zone(gfp, self.machine.configured_zones), 1 << order
        for zone in self.machine.populated_zones:
            if zone.zone_type > highest:
                continue  # GFP-ZONE-ELIGIBLE: never a higher zone
            first = -(-zone.start_pfn // n) * n  # BUDDY-ALIGN
            for pfn in range(first, zone.end_pfn - n + 1, n):  # BUDDY-NO-CROSS-ZONE
                if all(p in self.free for p in range(pfn, pfn + n)):
                    self.free.difference_update(range(pfn, pfn + n))
                    return pfn
        return None

    def free_pages(self, pfn, order):
        self.free.update(range(pfn, pfn + (1 << order)))


def make(machine, env):
    return FirstFit(machine, env)
