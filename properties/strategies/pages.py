"""Page allocator arguments: orders as callers ask for them, and the contexts alloc_pages may be called from."""

from __future__ import annotations

from functools import cache
from typing import Final

from hypothesis import strategies as st

from ...refmodel.context import Context

#: Contexts the page allocator may be called from; NMI is not one (CTX-NMI).
ALLOC_CONTEXTS: Final = (Context.PROCESS, Context.ATOMIC, Context.SOFTIRQ, Context.HARDIRQ)
#: The contexts in which a sleeping call is a might_sleep splat.
ATOMIC_CONTEXTS: Final = ALLOC_CONTEXTS[1:]


@cache
def orders(max_page_order: int) -> st.SearchStrategy[int]:
    """Orders 0..MAX_PAGE_ORDER + 1, small ones most often (as callers ask)."""
    return st.one_of(st.integers(0, min(2, max_page_order)), st.integers(0, max_page_order + 1))


@cache
def contexts() -> st.SearchStrategy[Context]:
    return st.sampled_from(ALLOC_CONTEXTS)
