"""``kmemspec bench``: implementation throughput and the oracle's cost per checked operation.

Workloads are deterministic (a fixed random.Random seed). Throughput times
the implementation alone. The oracle's cost replays one recorded
alloc/free sequence through the model (expect, check, adopt) on a small
machine and on a 16 GiB one: the two per-operation costs should be within
1.5x, since nothing in the model scans memory. The scale table times whole
``kmemspec check`` runs (each in its own process, for its peak RSS) from tiny
to 64 TiB: boot and every per-example structure cost O(ranges + touched), so
64 TiB should stay within 1.5x of 16 GiB in time and memory.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Callable

from ..refmodel.context import Context
from ..refmodel.gfp import GFP, GFP_ATOMIC, GFP_KERNEL
from ..refmodel.machine import Machine
from ..refmodel.presets import load_machine
from ..refmodel.page_alloc import PageAllocModel
from ..refmodel.kmalloc import kmalloc_min_align
from ..refmodel.objects import SlabModel
from ..refmodel.slab import SlabFlag
from .loader import load_impl
from .protocol import Env

BENCH_MACHINE = "x86_64:16G"
SCALE_MACHINES = ("tiny", "x86_64:16G", "x86_64:1T", "x86_64:64T")


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


@dataclass(frozen=True)
class SlabWorkload:
    """kmalloc/kfree (``cache_size`` 0) or kmem_cache_alloc/free of one cache, ``live_cap`` objects held at most."""

    name: str
    sizes: tuple[int, ...]
    live_cap: int
    cache_size: int = 0
    cache_flags: int = 0


SLAB_WORKLOADS = (
    SlabWorkload("kmalloc 8..256 churn", (8, 16, 24, 64, 96, 128, 192, 256), 256),
    SlabWorkload("kmalloc mixed to 8 KiB", (32, 100, 512, 1000, 4096, 8192), 128),
    SlabWorkload("kmalloc large (> 8 KiB)", (12288, 65536), 16),
    SlabWorkload("kmem_cache 40-byte objects", (), 512, cache_size=40),
    SlabWorkload("kmem_cache 40-byte, red zones + poison", (), 512, cache_size=40,
                 cache_flags=int(SlabFlag.RED_ZONE | SlabFlag.POISON)),
)


def _slab_ops(w: SlabWorkload, n: int, seed: int = 1) -> list[tuple[str, int]]:
    r = random.Random(seed)
    out: list[tuple[str, int]] = []
    live = 0
    for _ in range(n):
        if live and (live >= w.live_cap or r.random() < 0.5):
            out.append(("free", r.randrange(live)))
            live -= 1
        else:
            out.append(("alloc", r.choice(w.sizes) if w.sizes else w.cache_size))
            live += 1
    return out


def slab_throughput(spec: str, machine: Machine, w: SlabWorkload, n: int) -> float | None:
    """Operations per second of ``spec``'s kmalloc/kfree or kmem_cache_alloc/free alone; None without the capability."""
    impl = load_impl(spec, machine=machine.name)
    try:
        iut = impl.factory(machine, Env())
        caps = frozenset(getattr(iut, "capabilities", ()))
        if "kmalloc" not in caps or (w.cache_size and "slab" not in caps):
            return None
        if w.cache_size:
            cache = iut.kmem_cache_create("bench", w.cache_size, 0, w.cache_flags)
            alloc: Callable[[int], int | None] = lambda size: iut.kmem_cache_alloc(cache, GFP_KERNEL)  # noqa: E731
            free: Callable[[int], None] = lambda addr: iut.kmem_cache_free(cache, addr)  # noqa: E731
        else:
            alloc = lambda size: iut.kmalloc(size, GFP_KERNEL)  # noqa: E731
            free = iut.kfree
        live: list[int] = []
        ops = _slab_ops(w, n)
        t0 = time.perf_counter()
        for kind, a in ops:
            if kind == "free":
                if live:
                    free(live.pop(a % len(live)))
            else:
                addr = alloc(a)
                if addr:
                    live.append(addr)
        return len(ops) / (time.perf_counter() - t0)
    finally:
        impl.close()


def slab_oracle_cost(machine: Machine, n: int) -> float:
    """Microseconds per checked kmalloc/kfree of the slab oracle, replaying ``fast``'s objects."""
    w = SLAB_WORKLOADS[0]
    iut = load_impl("fast").factory(machine, Env())
    recorded: list[tuple[str, int, int]] = []
    live: list[tuple[int, int]] = []
    for kind, a in _slab_ops(w, n):
        if kind == "free":
            if live:
                addr, size = live.pop(a % len(live))
                iut.kfree(addr)
                recorded.append(("free", addr, size))
        else:
            addr = iut.kmalloc(a, GFP_KERNEL)
            if addr:
                live.append((addr, a))
                recorded.append(("alloc", addr, a))
    best = float("inf")
    for _ in range(3):
        model = SlabModel(machine, PageAllocModel(machine))
        t0 = time.perf_counter()
        for kind, addr, size in recorded:
            if kind == "alloc":
                model.expect_kmalloc(size, GFP_KERNEL, Context.PROCESS)
                model.check_object(addr, size, GFP_KERNEL, align=kmalloc_min_align(size), align_rule="KMALLOC-ALIGN", what="kmalloc")
                model.adopt_object(addr, size, GFP_KERNEL, 0)
            else:
                model.expect_kfree(addr)
                model.adopt_free(addr)
        best = min(best, time.perf_counter() - t0)
    return best * 1e6 / max(1, len(recorded))


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


def timed_check(impl: str, machine: str, profile: str = "ci", seed: int = 1) -> tuple[float, int, str]:
    """One ``kmemspec check`` in a child process: (wall seconds, peak RSS in bytes, its summary line)."""
    with tempfile.TemporaryDirectory() as reports:
        cmd = [sys.executable, "-m", "kmemspec.cli", "check", impl, "--machine", machine, "--profile", profile,
               "--seed", str(seed), "-q", "--report-dir", reports]
        t0 = time.perf_counter()
        child = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        out = child.stdout.read() if child.stdout else ""
        _, status, usage = os.wait4(child.pid, 0)
        seconds = time.perf_counter() - t0
        child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode not in (0, 1):
        raise RuntimeError(f"bench: `{' '.join(cmd)}` exited {child.returncode}:\n{out}")
    return seconds, usage.ru_maxrss * 1024, out.splitlines()[0] if out else ""


def scale_table(impl: str = "fast", machines: tuple[str, ...] = SCALE_MACHINES, profile: str = "ci",
                progress: object = sys.stderr) -> list[str]:
    """Whole-check time and peak RSS per machine size, each against the 16 GiB run (the 1.5x bound)."""
    rows = []
    for m in machines:
        print(f"bench: kmemspec check {impl} --machine {m} --profile {profile} --seed 1 ...", file=progress, flush=True)  # type: ignore[call-overload]
        rows.append((m, *timed_check(impl, m, profile)))
    base = next(((s, r) for m, s, r, _ in rows if m == BENCH_MACHINE), (rows[0][1], rows[0][2]))
    lines = [f"## Whole check by machine size (`kmemspec check {impl} --profile {profile} --seed 1`, one process each)", "",
             "| machine | RAM | seconds | peak RSS | time vs 16 GiB | RSS vs 16 GiB |", "|---|---:|---:|---:|---:|---:|"]
    worst = 0.0
    for m, seconds, rss, _ in rows:
        machine = load_machine(m)
        ram = sum(len(r) for r in machine.ram) * machine.page_size
        t, r = seconds / base[0], rss / base[1]
        if machine.max_pfn > load_machine(BENCH_MACHINE).max_pfn:
            worst = max(worst, t, r)
        lines.append(f"| {m} | {_size(ram)} | {seconds:.1f} | {rss / 2**20:.0f} MiB | {t:.2f}x | {r:.2f}x |")
    lines += ["", f"Largest ratio above 16 GiB: {worst:.2f}x ({'within' if worst <= 1.5 else 'OUTSIDE'} the 1.5x bound)."]
    return lines


def _size(n: int) -> str:
    """Bytes to three significant digits of the largest unit that fits (a preset's RAM is a little under its size)."""
    for unit, shift in (("TiB", 40), ("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= 0.99 * (1 << shift):
            return f"{n / (1 << shift):.3g} {unit}"
    return f"{n} B"


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
    lines += ["", f"## kmalloc and kmem_cache throughput on {BENCH_MACHINE} ({n} operations per workload)", "",
              "| workload | " + " | ".join(f"{name} ops/s" for name in names) + " |", "|---|" + "---:|" * len(columns)]
    for sw in SLAB_WORKLOADS:
        cells = []
        for s, iso in columns:
            v = slab_throughput(s, big, sw, n) if not iso else None
            cells.append("n/a" if v is None else f"{v:,.0f}")
        lines.append(f"| {sw.name} | " + " | ".join(cells) + " |")
    small = load_machine("tiny")
    w = Workload("oracle", (0, 1, 2), 24, (GFP_KERNEL, GFP_ATOMIC))
    small_us, big_us = oracle_cost(small, w, n), oracle_cost(big, w, n)
    ratio = max(small_us, big_us) / min(small_us, big_us)
    lines += ["", f"## Oracle cost per checked operation (expect + check + adopt, {n} operations)", "",
              "| machine | pages | µs per operation |", "|---|---:|---:|",
              f"| tiny | {small.max_pfn} | {small_us:.2f} |", f"| {BENCH_MACHINE} | {big.max_pfn} | {big_us:.2f} |", "",
              f"Ratio {ratio:.2f}x ({'within' if ratio <= 1.5 else 'OUTSIDE'} the 1.5x bound)."]
    small_slab, big_slab = slab_oracle_cost(small, n), slab_oracle_cost(big, n)
    lines += ["", f"Slab oracle (expect + check + adopt of kmalloc/kfree): {small_slab:.2f} µs per operation on tiny, "
                  f"{big_slab:.2f} µs on {BENCH_MACHINE} (ratio {max(small_slab, big_slab) / min(small_slab, big_slab):.2f}x)."]
    return "\n".join(lines)
