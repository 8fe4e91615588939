"""The rule catalog: every rule the suite checks, with its level and kernel source.

Rules are data (as the kernel keeps GFP_ZONE_TABLE as data): one ``Rule`` row
each, declared by the subsystem module that checks it (``page_alloc``,
``context``, ``kmalloc``, ``slab``, ``slab_debug``; the implementation
protocol's own rules are in ``iut``) and collected from the subsystem registry
into ``RULES``. ``detection`` and ``policy`` rules are checked only for
implementations that list the rule ID in their ``claims``; ``safety``,
``liveness`` and ``protocol`` rules bind every implementation of the
subsystem. ``kmemspec rules`` prints this table; docs/rules.md is generated
from it (``render_markdown``) and a test keeps the two equal.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence, Set
from typing import Final, overload

from . import _subsystem
from ._rule import Level, Rule


class _Catalog(Sequence[Rule]):
    """Every registered subsystem's rules, in registration order: a live view of the registry."""

    _gen = -1
    _rules: tuple[Rule, ...] = ()
    _by_id: dict[str, Rule] = {}
    _claimable: frozenset[str] = frozenset()

    def _sync(self) -> None:
        if self._gen != _subsystem.generation():
            rules = tuple(r for s in _subsystem.subsystems() for r in s.rules)
            self._rules, self._by_id = rules, {r.id: r for r in rules}
            self._claimable = frozenset(r.id for r in rules if r.needs_claim)
            self._gen = _subsystem.generation()

    @overload
    def __getitem__(self, i: int) -> Rule: ...
    @overload
    def __getitem__(self, i: slice) -> Sequence[Rule]: ...
    def __getitem__(self, i: int | slice) -> Rule | Sequence[Rule]:
        self._sync()
        return self._rules[i]

    def __len__(self) -> int:
        self._sync()
        return len(self._rules)

    def __iter__(self) -> Iterator[Rule]:
        self._sync()
        return iter(self._rules)

    def __repr__(self) -> str:
        return f"<kmemspec rule catalog: {len(self)} rules>"


class _ById(Mapping[str, Rule]):
    def __getitem__(self, rule_id: str) -> Rule:
        RULES._sync()
        return RULES._by_id[rule_id]

    def __iter__(self) -> Iterator[str]:
        RULES._sync()
        return iter(RULES._by_id)

    def __len__(self) -> int:
        return len(RULES)


class _Claimable(Set[str]):
    @classmethod
    def _from_iterable(cls, it: object) -> frozenset[str]:  # set algebra on the view yields plain frozensets
        return frozenset(it)  # type: ignore[arg-type]

    def __contains__(self, rule_id: object) -> bool:
        RULES._sync()
        return rule_id in RULES._claimable

    def __iter__(self) -> Iterator[str]:
        RULES._sync()
        return iter(RULES._claimable)

    def __len__(self) -> int:
        RULES._sync()
        return len(RULES._claimable)


#: The catalog; also a subsystem registered later (a third party's, a test's) appears here.
RULES: Final[_Catalog] = _Catalog()
RULES_BY_ID: Final[Mapping[str, Rule]] = _ById()
CLAIMABLE: Final[Set[str]] = _Claimable()

#: Rules that only an implementation in a child process can break.
PROCESS_RULES: Final[frozenset[str]] = frozenset({"IUT-PROCESS-ALIVE", "IUT-TIMEOUT", "IUT-WIRE-FORMAT"})


def rule(rule_id: str) -> Rule:
    """The rule with this ID; KeyError names the known prefixes."""
    try:
        return RULES_BY_ID[rule_id]
    except KeyError:
        raise KeyError(f"no rule {rule_id!r}; `kmemspec rules` lists them") from None


def binds(rule_id: str, claims: Set[str]) -> bool:
    """A rule is checked unless it is claimable and not claimed."""
    return rule_id not in CLAIMABLE or rule_id in claims


def rule_ids(*ids: str, where: str) -> tuple[str, ...]:
    """``ids``, each checked against the catalog: a rule ID spelt in code (a claim, a coverage key, a mutant's
    target) that names no rule raises InvalidDefinition at import, naming ``where`` and the nearest IDs."""
    from difflib import get_close_matches

    from .errors import InvalidDefinition

    for rule_id in ids:
        if rule_id not in RULES_BY_ID:
            near = get_close_matches(rule_id, list(RULES_BY_ID), n=3)
            hint = f"; did you mean {', '.join(near)}?" if near else "; `kmemspec rules` lists them"
            raise InvalidDefinition(f"{where}: {rule_id!r} is not a rule ID of the catalog{hint}")
    return ids


def render_table(rules: Sequence[Rule] = RULES) -> str:
    """The catalog as ``kmemspec rules`` prints it."""
    width = max(len(r.id) for r in rules)
    lines = []
    for r in rules:
        lines.append(f"{r.id:<{width}}  {r.level.value:<9}  {r.subsystem:<8}  {r.statement}")
        lines.append(f"{'':<{width}}  {'':<9}  {'':<8}  source: {r.source}")
    return "\n".join(lines)


def render_markdown(rules: Sequence[Rule] = RULES) -> str:
    """docs/rules.md, generated. ``kmemspec rules --markdown > docs/rules.md`` rewrites it."""
    out = [
        "# Rule catalog",
        "",
        "Generated by `kmemspec rules --markdown` from the subsystem modules of `refmodel/`; a test fails when this file",
        "and the catalog differ. `detection` and `policy` rules bind only implementations that claim them.",
        "",
        "| rule | level | subsystem | statement | kernel source |",
        "|---|---|---|---|---|",
    ]
    for r in rules:
        out.append(f"| `{r.id}` | {r.level.value} | {r.subsystem} | {r.statement} | {r.source} |")
    return "\n".join(out) + "\n"
