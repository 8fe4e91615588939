"""One naming service: the names a trace gives results (pfn_0, addr_1, obj_2, cache_0) and the references arguments become.

A printed test and a replay follow the implementation's own placement
through these names: ``free_pages(pfn=pfn_0 + 2, ...)`` means "two pages
into whatever the first alloc_pages returned". Each kind of argument
(refmodel.Kind) resolves to a name by what is live at its value.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

from ...refmodel.errors import InvalidArgument
from ...refmodel.kmalloc import ZERO_SIZE_PTR
from ..ops import Kind
from ..trace import Ref

if TYPE_CHECKING:
    from . import Lockstep


class Namer:
    """Names bound by results, and the reference an argument value becomes."""

    def __init__(self, driver: Lockstep) -> None:
        self._d = driver
        self.values: dict[str, int] = {}  # every name ever bound -> its value
        self._block_names: dict[int, str] = {}  # live block first pfn -> name (pfn_ or addr_)
        self._addr_names: dict[int, str] = {}  # freed or live page address -> name
        self._pfn_names: dict[int, str] = {}  # freed or live pfn -> name
        self._obj_names: dict[int, str] = {}  # live object address -> name
        self._freed_obj_names: dict[int, str] = {}  # every object address ever bound -> its last name
        self._cache_names: dict[int, str] = {}
        self._seq = Counter[str]()

    def _new(self, prefix: str, value: int) -> str:
        name = f"{prefix}_{self._seq[prefix]}"
        self._seq[prefix] += 1
        self.values[name] = value
        return name

    # -- binding results ---------------------------------------------------------------

    def bind_block(self, prefix: str, value: int, pfn: int) -> str:
        """A page block's result: ``pfn_N`` (alloc_pages) or ``addr_N`` (__get_free_pages)."""
        name = self._new(prefix, value)
        (self._addr_names if prefix == "addr" else self._pfn_names)[value] = name
        self._block_names[pfn] = name
        return name

    def bind_list(self, prefix: str) -> str:
        """A composite step's result, a list: ``fill_N``; its items are bound with ``bind_item``."""
        name = f"{prefix}_{self._seq[prefix]}"
        self._seq[prefix] += 1
        return name

    def bind_item(self, name: str, value: int, pfn: int) -> None:
        """Item ``name`` (``fill_0[3]``) of a list result, a page block by its first PFN."""
        self.values[name] = value
        self._pfn_names[value] = name
        self._block_names[pfn] = name

    def bind_object(self, addr: int) -> str:
        name = self._new("obj", addr)
        self._obj_names[addr] = name
        self._freed_obj_names[addr] = name
        return name

    def bind_cache(self, cid: int) -> str:
        name = self._new("cache", cid)
        self._cache_names[cid] = name
        return name

    def forget_block(self, pfn: int) -> None:
        self._block_names.pop(pfn, None)

    def forget_object(self, addr: int) -> None:
        self._obj_names.pop(addr, None)

    def object_name(self, addr: int) -> str | None:
        """The name of the live object at ``addr``, else of the last object that lived there."""
        return self._obj_names.get(addr) or self._freed_obj_names.get(addr)

    def value_of(self, name: str) -> int:
        """The value an earlier step bound to ``name`` (for replay)."""
        try:
            return self.values[name]
        except KeyError:
            raise InvalidArgument(f"this run never bound {name!r}; the implementation behaved differently from the recorded run") from None

    # -- arguments as references ---------------------------------------------------------

    def ref(self, kind: Kind, value: int | str) -> int | str | Ref:
        """``value`` of an argument of ``kind`` as a printed test names it."""
        if isinstance(value, str):
            return value
        if kind is Kind.PFN:
            return self.pfn_ref(value)
        if kind is Kind.ADDR:
            return self.addr_ref(value)
        if kind is Kind.OBJECT:
            return self.obj_ref(value)
        if kind is Kind.CACHE:
            return Ref(self._cache_names[value]) if value in self._cache_names else value
        return value

    def pfn_ref(self, pfn: int) -> int | Ref:
        blk = self._d.model.live_block_at(pfn)
        if blk is not None and not self._block_names.get(blk.pfn, "addr").startswith("addr"):
            return Ref(self._block_names[blk.pfn], pfn - blk.pfn)
        if pfn in self._pfn_names:
            return Ref(self._pfn_names[pfn])
        return pfn

    def addr_ref(self, addr: int) -> int | Ref:
        m = self._d.machine
        pfn = m.virt_to_pfn(addr - addr % m.page_size)
        blk = self._d.model.live_block_at(pfn) if pfn is not None else None
        if blk is not None and self._block_names.get(blk.pfn, "").startswith("addr"):
            name = self._block_names[blk.pfn]
            return Ref(name, addr - self.values[name])
        if addr in self._addr_names:
            return Ref(self._addr_names[addr])
        return addr

    def obj_ref(self, addr: int) -> int | Ref:
        slab = self._d.slab
        obj = slab.object_at(addr)
        if obj is not None and obj.addr in self._obj_names:
            return Ref(self._obj_names[obj.addr], addr - obj.addr)
        pfn = self._d.machine.virt_to_pfn(addr)
        blk = self._d.model.live_block_at(pfn) if pfn is not None else None
        if blk is not None and blk.pfn not in slab.slab_blocks:
            return self.addr_ref(addr)  # a page block now, whatever object lived there before
        if addr in self._freed_obj_names:
            return Ref(self._freed_obj_names[addr])
        return self.addr_ref(addr) if addr > ZERO_SIZE_PTR else addr
