"""The object oracle: the slab layer, kmalloc and SLUB debugging as the one model a checker holds.

``SlabModel`` is the slab layer (``slab.SlabLayer``: caches, the object
index, the slabs shown) with kmalloc (``self.kmalloc``, ``kmalloc``) and SLUB
debugging (``self.debug``, ``slab_debug``) on the same object index. It adds
no rule of its own: each method below hands the call to the part whose rule
it is, so a caller holds one object, as ``mm/slub.c`` serves kmalloc,
kmem_cache and their debugging alike.

Neighbours: the page oracle it stands beside is ``page_alloc``.
"""

from __future__ import annotations

from . import slab, slab_debug
from ._subsystem import Configuration, Subsystem
from .rules import binds
from .context import Context
from .expectation import Expectation
from .kmalloc import KmallocModel
from .machine import Machine
from .page_alloc import PageAllocModel
from .slab import LiveObject, SlabLayer
from .slab_debug import Corruption, FreeObject, SlabDebug


class SlabModel(SlabLayer):
    """The slab and kmalloc oracle for one machine, beside the page oracle: ``SlabLayer`` plus kmalloc and SLUB debugging."""

    def __init__(self, machine: Machine, pages: PageAllocModel, *, exact: bool = False, page_liveness: frozenset[str] = frozenset()) -> None:
        super().__init__(machine, pages, exact=exact, page_liveness=page_liveness)
        self.kmalloc = KmallocModel(self)
        self.debug = SlabDebug(self)

    # -- kmalloc ---------------------------------------------------------------------------

    def expect_kmalloc(self, size: int, gfp: int, ctx: Context) -> Expectation:
        return self.kmalloc.expect_kmalloc(size, gfp, ctx)

    def expect_kfree(self, addr: int, *, cid: int | None = None) -> Expectation:
        """kfree(addr), or kmem_cache_free(cache cid, addr)."""
        return self.kmalloc.expect_kfree(addr) if cid is None else self.expect_object_free(addr, cid=cid)

    def adopt_resize(self, addr: int, size: int) -> None:
        self.kmalloc.adopt_resize(addr, size)

    def large_object_at(self, pfn: int) -> LiveObject | None:
        return self.kmalloc.large_object_at(pfn)

    def expect_free_slab_block(self, pfn: int, order: int) -> Expectation | None:
        """free_pages(pfn, order) of a block the slab layer shows: a large kmalloc block's, else a slab's; None for neither."""
        if self.kmalloc.large_object_at(pfn) is not None:
            return self.kmalloc.expect_free_large_block(pfn, order)
        return super().expect_free_slab_block(pfn, order)

    # -- SLUB debugging --------------------------------------------------------------------

    @property
    def debug_free(self) -> dict[int, FreeObject]:
        return self.debug.free

    @property
    def corrupt(self) -> dict[int, list[Corruption]]:
        return self.debug.corrupt

    def expected_poison(self, cid: int | None, gfp: int) -> bytes | None:
        return self.debug.expected_poison(cid, gfp)

    def note_free(self, obj: LiveObject) -> FreeObject | None:
        return self.debug.note_free(obj)

    def free_object_at(self, addr: int) -> FreeObject | None:
        return self.debug.free_object_at(addr)

    def clobber_sites(self, cid: int, claims: frozenset[str], area: str | None = None) -> list[int]:
        return self.debug.clobber_sites(cid, claims, area)

    def classify_clobber(self, addr: int, claims: frozenset[str]) -> Corruption:
        return self.debug.classify_clobber(addr, claims)

    def expect_validate(self, cid: int) -> Expectation:
        return self.debug.expect_validate(cid)


def _configured(machine: Machine, pages: PageAllocModel, config: Configuration) -> SlabModel:
    """The oracle for an implementation: exact where it shows its slabs; slab liveness judged where it claims it."""
    # Without SLAB-NO-SPURIOUS-FAIL only a blocking __GFP_NOFAIL allocation is required: no page query per kmalloc.
    liveness = frozenset(r for r in ("BUDDY-NO-SPURIOUS-FAIL", "NOFAIL-NEVER-NULL") if binds(r, config.claims)
                         and (r == "NOFAIL-NEVER-NULL" or binds("SLAB-NO-SPURIOUS-FAIL", config.claims)))
    return SlabModel(machine, pages, exact="slab_info" in config.capabilities, page_liveness=liveness)


SUBSYSTEM = Subsystem(
    "slab", "slab caches, their pages and SLUB debugging (mm/slub.c, mm/slab_common.c)",
    capabilities=("slab", "slab_info", "slab_debug"), rules=slab.RULES + slab_debug.RULES, ops=slab.OPS + slab_debug.OPS,
    applies_to=frozenset({"kmalloc", "slab"}), model=lambda machine, models, config: _configured(machine, models["pages"], config),
    depends=("pages", "kmalloc"),
)
