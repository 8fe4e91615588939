"""What an implementation or machine spelling names, and the values they resolve to, with nothing loaded.

``BUNDLED`` and ``SCHEMES`` are the spellings kmemspec itself knows;
``ImplSpec`` is a resolved implementation (what the loader and every
``kmemspec_load_impl`` plugin return), ``ResolvedMachine`` a machine read
once; ``spec_import_lines`` says how a pasteable test binds ``make`` for a
spelling. Resolving happens in ``loader``; this module imports neither it nor
the hooks, so both can name these types.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

from ..refmodel.errors import InvalidDefinition, KmemspecError
from ..refmodel.machine import Machine, machine_from_dict
from ..refmodel.presets import load_machine
from .protocol import Factory

BUNDLED: Final[dict[str, str]] = {
    "fast": "kmemspec.harness.impls.fast:make",
    "reference": "kmemspec.harness.impls.reference:make",
}


#: Spellings with a scheme: ``SCHEME:rest``.
SCHEMES: Final = ("c", "exec", "mutant")


@dataclass(frozen=True)
class ImplSpec:
    """A resolved implementation: the user's spelling, a short label for report paths, the factory.

    ``transport`` is how it is reached: ``python`` (an object in this
    process), ``c`` (a library through ctypes) or ``process`` (JSON lines to
    a child); ``isolated`` says a Python or C implementation was put behind a
    process by ``--isolate``.
    """

    spec: str
    label: str
    factory: Factory
    transport: str = "python"
    isolated: bool = False

    def close(self) -> None:
        """Stop whatever the factory keeps running (child processes); idempotent."""
        close = getattr(self.factory, "close", None)
        if callable(close):
            close()

    def import_lines(self) -> list[str]:
        """Python lines that bind ``make`` to this factory, for a pasteable test."""
        return spec_import_lines(self.spec)


@dataclass(frozen=True)
class ResolvedMachine:
    """A machine resolved once: the user's spelling, the ``Machine``, and its description (the machine file format).

    The CLI and the pytest plugin resolve ``--machine`` once and pass this one
    value down: the run, an ``--isolate`` child and the replay file all see the
    machine that was read at the start, even if its file changes or goes away
    later. ``description`` is ``Machine.to_dict()``; ``machine_from_dict``
    gives the same machine back, which is how ``kmemspec replay`` rebuilds it.
    """

    spec: str
    machine: Machine
    description: dict[str, Any] = field(hash=False, repr=False)

    @classmethod
    def from_spec(cls, spec: str) -> ResolvedMachine:
        """Read a preset or a machine file (``load_machine``); raises InvalidMachine with one line."""
        machine = load_machine(spec)
        return cls(spec, machine, machine.to_dict())

    @classmethod
    def from_description(cls, spec: str, description: Any, *, where: str = "machine") -> ResolvedMachine:
        """Rebuild a recorded machine from its description; ``spec`` is the spelling it was recorded under."""
        try:
            machine = machine_from_dict(description)
        except KmemspecError as e:
            raise InvalidDefinition(f"{where}: the recorded machine description is not valid: {e}") from None
        return cls(spec, machine, machine.to_dict())


#: Spellings a plugin resolved in this process: their pasteable tests go through load_impl.
_PLUGIN_SPELLINGS: Final[set[str]] = set()


def note_plugin_spelling(spec: str) -> None:
    """Record that a plugin, not the built-in loader, resolved ``spec`` (see ``spec_import_lines``)."""
    _PLUGIN_SPELLINGS.add(spec)


def spec_import_lines(spec: str) -> list[str]:
    """The lines a pasteable test needs to bind ``make`` for ``spec``; loads nothing."""
    if spec.partition(":")[0] in SCHEMES or spec in _PLUGIN_SPELLINGS:
        return ["from kmemspec.harness import load_impl", f"make = load_impl({spec!r}).factory"]
    target = BUNDLED.get(spec, spec)
    module, _, attr = target.rpartition(":")
    if module.endswith(".py") or "/" in module:
        return ["from kmemspec.harness import load_impl", f"make = load_impl({spec!r}).factory"]
    if attr == "make":
        return [f"from {module} import make"]
    return [f"from {module} import {attr} as make"]
