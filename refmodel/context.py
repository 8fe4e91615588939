"""Execution contexts and the might_sleep rule.

Models ``include/linux/preempt.h`` (the preempt_count layout and the
in_atomic()/in_interrupt() predicates) and ``kernel/sched/core.c``
``__might_resched()`` (DEBUG_ATOMIC_SLEEP). Which GFP flags may block is
``gfp.gfpflags_allow_blocking``.
"""

from __future__ import annotations

import enum
from typing import Final

from ._subsystem import Kind, Subsystem, op
from .rules import Level, Rule

PREEMPT_OFFSET: Final = 0x1
SOFTIRQ_OFFSET: Final = 0x100
HARDIRQ_OFFSET: Final = 0x10000
NMI_OFFSET: Final = 0x100000
SOFTIRQ_MASK: Final = 0xFF00
HARDIRQ_MASK: Final = 0xF0000
NMI_MASK: Final = 0xF00000


class Context(enum.IntEnum):
    """Where the caller runs. The value is the preempt_count it implies (fact CTX-PREEMPT-LAYOUT, preempt.h).

    PROCESS is task context with preemption enabled. ATOMIC is task context
    with preemption disabled or a spinlock held (PREEMPT_LOCK_OFFSET = 1,
    fact CTX-SPINLOCK). SOFTIRQ serves a softirq, HARDIRQ a hard interrupt, NMI a
    non-maskable interrupt.
    """

    PROCESS = 0
    ATOMIC = PREEMPT_OFFSET
    SOFTIRQ = SOFTIRQ_OFFSET
    HARDIRQ = HARDIRQ_OFFSET
    NMI = NMI_OFFSET | HARDIRQ_OFFSET

    @property
    def preempt_count(self) -> int:
        return int(self)


def in_atomic(ctx: Context) -> bool:
    """Fact CTX-PREDICATES: in_atomic() is preempt_count != 0 (include/linux/preempt.h)."""
    return ctx.preempt_count != 0


def in_interrupt(ctx: Context) -> bool:
    """Fact CTX-PREDICATES: in_interrupt() is irq_count() != 0: NMI, hardirq, softirq served or BH disabled (include/linux/preempt.h)."""
    return bool(ctx.preempt_count & (NMI_MASK | HARDIRQ_MASK | SOFTIRQ_MASK))


def in_nmi(ctx: Context) -> bool:
    """Fact CTX-PREDICATES: in_nmi() tests the NMI bits (include/linux/preempt.h)."""
    return bool(ctx.preempt_count & NMI_OFFSET)


def may_sleep(ctx: Context) -> bool:
    """CTX-MIGHT-SLEEP: might_sleep() reports wherever preempt_count is not 0 (kernel/sched/core.c __might_resched).

    The kernel also reports with IRQs disabled, in the idle task and under
    non_block_count; the model has no such contexts yet.
    """
    return not in_atomic(ctx)


def page_alloc_allowed(ctx: Context) -> bool:
    """Fact CTX-NMI: the page allocator is not to be called from NMI, even with GFP_ATOMIC (include/linux/gfp_types.h DOC).

    ``alloc_pages_nolock``/``free_pages_nolock`` are the NMI-safe entry points;
    plain alloc_pages/__free_pages from NMI is a caller bug the suite never generates.
    """
    return not in_nmi(ctx)


# -- the subsystem ----------------------------------------------------------------

RULES: tuple[Rule, ...] = (
    Rule("CTX-NO-SLEEP", "context", Level.SAFETY, "an allocator sleeps only for GFP flags that allow blocking (after might_sleep's report, even in atomic context, as the kernel does); freeing never sleeps",
       "include/linux/gfp.h gfpflags_allow_blocking; include/linux/sched/mm.h might_alloc; mm/page_alloc.c __free_pages (callable from IRQ context)"),
    Rule("CTX-MIGHT-SLEEP", "context", Level.DETECTION, "an allocation whose GFP flags allow blocking, made in atomic context, reports SleepInAtomic (and may then proceed)",
       "include/linux/sched/mm.h might_alloc -> might_sleep_if; kernel/sched/core.c __might_resched (DEBUG_ATOMIC_SLEEP)"),
)

SUBSYSTEM = Subsystem(
    "context", "execution contexts: might_sleep, and where an allocator may sleep (include/linux/preempt.h, kernel/sched/core.c)",
    rules=RULES, ops=(op("set_context", "pages", ("ctx", Kind.CONTEXT), wire=False, doc="enter an execution context"),),
)
