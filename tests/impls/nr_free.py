"""A subsystem defined outside kmemspec's packages: nr_free_pages(), with its oracle, rule, op, checker and rule set.

Nothing in refmodel/, harness/ or properties/ names it: this module registers
each part with its package's registry, as a new subsystem (vmalloc, DMA, ...)
does from its own files. It is the proof that adding a subsystem is local
(tests/test_registry.py), and it runs in process, behind --isolate and in replay.

    make              fast, plus nr_free_pages(): conforms
    make_off_by_one   nr_free_pages() counts one page too many: breaks TEST-NR-FREE-PAGES
"""

from __future__ import annotations

from typing import Any

from hypothesis.stateful import rule

from kmemspec.harness.impls.fast import make as make_fast
from kmemspec.harness.lockstep import Checker, register_checker
from kmemspec.properties import RuleSet, register_rule_set
from kmemspec.refmodel import Expectation, Level, Outcome, Returns, Rule, Subsystem, op, register, subsystems

#: This file may be executed twice in one process (imported, and loaded by path as an implementation): register once.
_FIRST = "nr_free" not in {s.name for s in subsystems()}


# -- refmodel: the oracle, the rule, the operation ---------------------------------------

class NrFreeModel:
    """nr_free_pages(): the free pages of every zone, as the buddy oracle counts them (mm/page_alloc.c nr_free_pages)."""

    def __init__(self, pages: Any) -> None:
        self.pages = pages

    def nr_free_pages(self) -> int:
        return sum(self.pages.nr_free.values())


RULES = (
    Rule("TEST-NR-FREE-PAGES", "nr_free", Level.SAFETY, "nr_free_pages() is the number of free pages in the buddy lists",
         "include/linux/swap.h nr_free_pages (global_zone_page_state(NR_FREE_PAGES)); mm/page_alloc.c __mod_zone_freepage_state"),
)
OPS = (op("nr_free_pages", "nr_free", returns=Returns.SIZE, doc="the number of free pages"),)

if _FIRST:
    register(Subsystem("nr_free", "a test subsystem: nr_free_pages()", capabilities=("nr_free",), rules=RULES, ops=OPS,
                       applies_to=frozenset({"nr_free"}), model=lambda machine, models, config: NrFreeModel(models["pages"]), depends=("pages",)))


# -- harness: the checker ------------------------------------------------------------------

class NrFreeChecker(Checker):
    """nr_free_pages(), judged against the page oracle's count."""

    subsystem = "nr_free"
    steps = ("nr_free_pages",)

    def applies(self) -> bool:
        return "nr_free" in self.d.capabilities

    def nr_free_pages(self) -> int:
        d = self.d
        e = Expectation(Outcome.MUST_SUCCEED, "TEST-NR-FREE-PAGES", "nr_free_pages() always answers")
        _, result, _ = d.step("nr_free_pages", {}, e, d.iut.nr_free_pages)
        n = d.int_result(result, "nr_free_pages")
        d.coverage["TEST-NR-FREE-PAGES"] += 1
        want = d.models["nr_free"].nr_free_pages()
        if not d.model.opaque and n != want:
            raise d.fail("TEST-NR-FREE-PAGES", f"nr_free_pages() returned {n}; the buddy lists hold {want} free pages")
        return n


if _FIRST:
    register_checker(NrFreeChecker)


# -- properties: the rule set -----------------------------------------------------------------

class NrFreeRules(RuleSet):
    @rule()
    def nr_free_pages(self) -> None:
        self.iut.nr_free_pages()


if _FIRST:
    register_rule_set("nr_free", NrFreeRules)


# -- implementations ----------------------------------------------------------------------------

class _WithNrFree:
    """``fast`` with nr_free_pages() counted from its own free area."""

    def __init__(self, machine: Any, env: Any, error: int = 0) -> None:
        self._inner = make_fast(machine, env)
        self.capabilities = self._inner.capabilities | {"nr_free"}
        self.claims = self._inner.claims
        self._error = error

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def nr_free_pages(self) -> int:
        return sum((row[2] if len(row) > 2 else 1) << row[1] for row in self._inner.free_area()) + self._error


def make(machine: Any, env: Any) -> _WithNrFree:
    return _WithNrFree(machine, env)


def make_off_by_one(machine: Any, env: Any) -> _WithNrFree:
    return _WithNrFree(machine, env, error=1)
