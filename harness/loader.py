"""Finding and building an implementation from its command-line spelling.

``fast`` and ``reference`` name the bundled allocators; ``pkg.module:make``
imports a module; ``path/to/file.py:make`` loads a file. Every way this can
go wrong ends in one InvalidDefinition line that says what to do.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from ..refmodel.errors import InvalidDefinition
from ..refmodel.machine import Machine
from .protocol import Env, Factory, validate_iut

BUNDLED: Final[dict[str, str]] = {
    "fast": "kmemspec.harness.impls.fast:make",
    "reference": "kmemspec.harness.impls.reference:make",
}


@dataclass(frozen=True)
class ImplSpec:
    """A resolved implementation: the user's spelling, a short label for report paths, the factory."""

    spec: str
    label: str
    factory: Factory

    def import_lines(self) -> list[str]:
        """Python lines that bind ``make`` to this factory, for a pasteable test."""
        if self.spec.startswith("mutant:"):
            return ["from kmemspec.harness import load_impl", f"make = load_impl({self.spec!r}).factory"]
        target = BUNDLED.get(self.spec, self.spec)
        module, _, attr = target.rpartition(":")
        if module.endswith(".py") or "/" in module:
            return ["from kmemspec.harness import load_impl", f"make = load_impl({self.spec!r}).factory"]
        if attr == "make":
            return [f"from {module} import make"]
        return [f"from {module} import {attr} as make"]


def load_impl(spec: str) -> ImplSpec:
    """Resolve ``spec`` to a factory. Raises InvalidDefinition with one line on any failure."""
    if spec.startswith("mutant:"):
        return _load_mutant(spec)
    target = BUNDLED.get(spec, spec)
    module, sep, attr = target.rpartition(":")
    if not sep or not module or not attr:
        raise InvalidDefinition(
            f"implementation {spec!r}: expected MODULE:FACTORY or path/to/file.py:FACTORY "
            f"(e.g. mypkg.alloc:make), or one of {', '.join(BUNDLED)}"
        )
    if module.endswith(".py") or "/" in module or "\\" in module:
        obj = _load_file(spec, Path(module))
    else:
        obj = _import_module(spec, module)
    factory = getattr(obj, attr, None)
    if factory is None:
        names = sorted(n for n in dir(obj) if not n.startswith("_") and callable(getattr(obj, n)))
        hint = f"; callables there: {', '.join(names[:8])}" if names else ""
        raise InvalidDefinition(f"implementation {spec!r}: {module} has no attribute {attr!r}{hint}")
    if not callable(factory):
        raise InvalidDefinition(f"implementation {spec!r}: {attr} is a {type(factory).__name__}, not a factory make(machine, env)")
    label = spec if spec in BUNDLED else _label(module, attr)
    return ImplSpec(spec, label, factory)


def _load_mutant(spec: str) -> ImplSpec:
    """``mutant:NAME``: a seeded-bug variant of ``fast`` (harness/impls/mutants.py)."""
    from .impls.mutants import MUTANTS

    name = spec.partition(":")[2]
    if name not in MUTANTS:
        raise InvalidDefinition(f"implementation {spec!r}: no such mutant; mutants are {', '.join(sorted(MUTANTS))}")
    return ImplSpec(spec, f"mutant-{name}", MUTANTS[name].factory)


def _label(module: str, attr: str) -> str:
    base = Path(module).stem if module.endswith(".py") else module
    text = base if attr == "make" else f"{base}-{attr}"
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text)


def _import_module(spec: str, module: str) -> Any:
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as e:
        if e.name and module.startswith(e.name):
            raise InvalidDefinition(
                f"implementation {spec!r}: no module named {e.name!r}; is it installed or on PYTHONPATH? "
                f"For a file, write path/to/file.py:FACTORY"
            ) from None
        raise InvalidDefinition(f"implementation {spec!r}: importing {module} failed: {e}") from None
    except Exception as e:  # the user's module raised while importing
        raise InvalidDefinition(f"implementation {spec!r}: importing {module} raised {type(e).__name__}: {e}") from None


def _load_file(spec: str, path: Path) -> Any:
    if not path.is_file():
        raise InvalidDefinition(f"implementation {spec!r}: file {path} does not exist")
    name = f"_kmemspec_impl_{abs(hash(str(path.resolve())))}"
    if name in sys.modules:
        return sys.modules[name]
    mod_spec = importlib.util.spec_from_file_location(name, path)
    if mod_spec is None or mod_spec.loader is None:
        raise InvalidDefinition(f"implementation {spec!r}: {path} is not a Python file")
    mod = importlib.util.module_from_spec(mod_spec)
    sys.modules[name] = mod
    try:
        mod_spec.loader.exec_module(mod)
    except Exception as e:
        del sys.modules[name]
        raise InvalidDefinition(f"implementation {spec!r}: loading {path} raised {type(e).__name__}: {e}") from None
    return mod


def build_iut(factory: Factory, machine: Machine, env: Env, label: str) -> tuple[Any, frozenset[str], frozenset[str]]:
    """Call the factory and validate the object; return (iut, capabilities, claims)."""
    try:
        iut = factory(machine, env)
    except Exception as e:
        raise InvalidDefinition(f"{label}: the factory raised {type(e).__name__}: {e} (it is called as make(machine, env))") from None
    caps, claims = validate_iut(iut, label)
    return iut, caps, claims
