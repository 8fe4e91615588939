"""``kmemspec bench``: implementation throughput and the oracle's cost per checked operation.

Workloads are deterministic (a fixed random.Random seed). Throughput times
the implementation alone. The oracle's cost replays one recorded
alloc/free sequence through the model (expect, check, adopt) on a small
machine and on a 16 GiB one: the two per-operation costs should be within
1.5x, since nothing in the model scans memory.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Callable

from ..refmodel.gfp import GFP, GFP_ATOMIC, GFP_KERNEL
from ..refmodel.machine import Machine, load_machine
from ..refmodel.page_alloc import PageAllocModel
from .loader import load_impl
from .protocol import Env

BENCH_MACHINE = "x86_64:16G"


@dataclass(frozen=True)
class Workload:
    """A named operation mix: ``live_cap`` blocks held at most, orders drawn from ``orders``."""

    name: str
    orders: tuple[int, ...]
    live_cap: int
    gfps: tuple[int, ...]


WORKLOADS = (
    Workload("order-0 churn", (0,), 64, (GFP_KERNEL,)),
    Workload("mixed orders 0-3", (0, 1, 2, 3), 64, (GFP_KERNEL, GFP_ATOMIC, GFP_KERNEL | GFP.DMA32)),
    Workload("large blocks 4-10", (4, 6, 8, 10), 16, (GFP_KERNEL,)),
    Workload("DMA zone pressure", (0, 1, 2), 512, (GFP_ATOMIC | GFP.DMA,)),
)


def _ops(w: Workload, n: int, seed: int = 1) -> list[tuple[str, int, int]]:
    """("alloc", gfp, order) or ("free", index into live, 0) decisions, fixed by the seed."""
    r = random.Random(seed)
    out: list[tuple[str, int, int]] = []
    live = 0
    for _ in range(n):
        if live and (live >= w.live_cap or r.random() < 0.5):
            out.append(("free", r.randrange(live), 0))
            live -= 1
        else:
            out.append(("alloc", r.choice(w.gfps), r.choice(w.orders)))
            live += 1
    return out


def _drive(ops: list[tuple[str, int, int]], alloc: Callable[[int, int], int | None], free: Callable[[int, int], None]) -> int:
    live: list[tuple[int, int]] = []
    done = 0
    for kind, a, b in ops:
        if kind == "free":
            if live:
                pfn, order = live.pop(a % len(live))
                free(pfn, order)
                done += 1
        else:
            pfn = alloc(a, b)
            done += 1
            if pfn is not None:
                live.append((pfn, b))
    return done


def impl_throughput(spec: str, machine: Machine, w: Workload, n: int, *, isolate: bool = False) -> float:
    """Operations per second of ``spec`` alone on workload ``w`` (in a child process with ``isolate``)."""
    impl = load_impl(spec, isolate=isolate, machine=machine.name)
    try:
        iut = impl.factory(machine, Env())
        ops = _ops(w, n)
        t0 = time.perf_counter()
        done = _drive(ops, iut.alloc_pages, iut.free_pages)
        return done / (time.perf_counter() - t0)
    finally:
        impl.close()


def oracle_cost(machine: Machine, w: Workload, n: int) -> float:
    """Microseconds per checked operation of the model, replaying ``fast``'s choices."""
    iut = load_impl("fast").factory(machine, Env())
    recorded: list[tuple[str, int, int, int | None]] = []

    def alloc(gfp: int, order: int) -> int | None:
        pfn = iut.alloc_pages(gfp, order)
        recorded.append(("alloc", gfp, order, pfn))
        return pfn

    def free(pfn: int, order: int) -> None:
        iut.free_pages(pfn, order)
        recorded.append(("free", pfn, order, None))

    _drive(_ops(w, n), alloc, free)
    best = float("inf")
    for _ in range(3):  # best of three: the least disturbed run
        model = PageAllocModel(machine)
        t0 = time.perf_counter()
        for kind, a, b, pfn in recorded:
            if kind == "alloc":
                model.expect_alloc(a, b)
                if pfn is not None:
                    model.check_alloc(a, b, pfn)
                    model.adopt_alloc(a, b, pfn)
            else:
                model.expect_free(a, b)
                model.adopt_free(a, b)
        best = min(best, time.perf_counter() - t0)
    return best * 1e6 / len(recorded)


def run_bench(n: int, impls: list[str], *, isolated: bool = False) -> str:
    """The report ``kmemspec bench`` prints (a Markdown table, pasteable into docs/bench.md).

    With ``isolated``, each implementation is also timed behind the JSON lines
    protocol (``--isolate``): the cost of process isolation per operation.
    """
    big = load_machine(BENCH_MACHINE)
    columns = [(s, False) for s in impls] + ([(s, True) for s in impls if not s.startswith("exec:")] if isolated else [])
    names = [f"{s} (isolated)" if iso else s for s, iso in columns]
    lines = [f"## Implementation throughput on {BENCH_MACHINE} ({n} operations per workload)", "",
             "| workload | " + " | ".join(f"{name} ops/s" for name in names) + " |", "|---|" + "---:|" * len(columns)]
    for w in WORKLOADS:
        lines.append(f"| {w.name} | " + " | ".join(f"{impl_throughput(s, big, w, n, isolate=iso):,.0f}" for s, iso in columns) + " |")
    small = load_machine("tiny")
    w = Workload("oracle", (0, 1, 2), 24, (GFP_KERNEL, GFP_ATOMIC))
    small_us, big_us = oracle_cost(small, w, n), oracle_cost(big, w, n)
    ratio = max(small_us, big_us) / min(small_us, big_us)
    lines += ["", f"## Oracle cost per checked operation (expect + check + adopt, {n} operations)", "",
              "| machine | pages | µs per operation |", "|---|---:|---:|",
              f"| tiny | {small.max_pfn} | {small_us:.2f} |", f"| {BENCH_MACHINE} | {big.max_pfn} | {big_us:.2f} |", "",
              f"Ratio {ratio:.2f}x ({'within' if ratio <= 1.5 else 'OUTSIDE'} the 1.5x bound)."]
    return "\n".join(lines)
