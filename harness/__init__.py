"""kmemspec.harness: the implementation under test: protocol, loading, the lockstep checker, traces, reports.

``Lockstep`` drives an implementation in step with the oracle; ``load_impl``
resolves ``module:factory`` / ``file.py:factory`` / a bundled name; ``Env``
is what an implementation is given. The command line lives in ``cli``.
"""

from .loader import BUNDLED, ImplSpec, build_iut, load_impl
from .lockstep import Lockstep
from .protocol import CAPABILITY_METHODS, Env, PageAllocator, validate_iut
from .trace import Ref, Step, dump_trace, load_trace, render_test

__all__ = [
    "BUNDLED",
    "CAPABILITY_METHODS",
    "Env",
    "ImplSpec",
    "Lockstep",
    "PageAllocator",
    "Ref",
    "Step",
    "build_iut",
    "dump_trace",
    "load_impl",
    "load_trace",
    "render_test",
    "validate_iut",
]
