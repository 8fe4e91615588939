"""A sparse simulated physical memory for the bundled implementations: absent pages read as zero."""

from __future__ import annotations


class SparseMemory:
    """Pages materialise on first write, so a 16 GiB machine costs only what is written."""

    def __init__(self, page_size: int) -> None:
        self.page_size = page_size
        self._pages: dict[int, bytearray] = {}

    def read(self, phys_addr: int, length: int) -> bytes:
        out = bytearray()
        while length > 0:
            pfn, off = divmod(phys_addr, self.page_size)
            n = min(length, self.page_size - off)
            page = self._pages.get(pfn)
            out += page[off:off + n] if page is not None else bytes(n)
            phys_addr, length = phys_addr + n, length - n
        return bytes(out)

    def write(self, phys_addr: int, data: bytes) -> None:
        view = memoryview(bytes(data))
        while view:
            pfn, off = divmod(phys_addr, self.page_size)
            n = min(len(view), self.page_size - off)
            page = self._pages.get(pfn)
            if page is None:
                page = self._pages[pfn] = bytearray(self.page_size)
            page[off:off + n] = view[:n]
            phys_addr, view = phys_addr + n, view[n:]

    def zero_pages(self, pfn: int, nr_pages: int) -> None:
        """Zero [pfn, pfn + nr_pages): cost is the number of pages ever written there, at most nr_pages."""
        if nr_pages > len(self._pages):
            for p in [p for p in self._pages if pfn <= p < pfn + nr_pages]:
                del self._pages[p]
        else:
            for p in range(pfn, pfn + nr_pages):
                self._pages.pop(p, None)
