"""An allocator with a known departure and a second, rarer bug: what ``kmemspec check --skip`` is for.

    make    double frees go unchecked (BUDDY-DOUBLE-FREE, found within a few examples, a departure
            its authors know of), and kmalloc(0) returns NULL (KMALLOC-ZERO-SIZE, reached later)
"""

from __future__ import annotations

from typing import Any

from kmemspec.harness.impls.mutants import DoubleFreeUnchecked, ZeroSizeNull


class _Departs(ZeroSizeNull, DoubleFreeUnchecked):
    """Both slips at once."""


def make(machine: Any, env: Any) -> _Departs:
    return _Departs(machine, env)
