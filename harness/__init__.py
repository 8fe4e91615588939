"""kmemspec.harness: the implementation under test: protocol, loading, the lockstep checker, traces, reports.

``Lockstep`` drives an implementation in step with the oracle; ``load_impl``
resolves ``module:factory`` / ``file.py:factory`` / ``c:lib.so`` /
``exec:CMD`` / a bundled name; ``Env`` is what an implementation is given.
``adapters`` reach C libraries and other processes; ``load_expectations`` and
``compare_expectations`` gate CI on an expectations file. The command line
lives in ``cli``, the JSON lines server in ``serve``.
"""

from .expectations import Expectations, load_expectations
from .expectations import compare as compare_expectations
from .loader import BUNDLED, ImplSpec, build_iut, load_impl
from .lockstep import Lockstep
from .protocol import CAPABILITY_METHODS, Env, PageAllocator, TransportFailure, validate_iut
from .trace import Ref, Step, dump_trace, load_trace, render_test

__all__ = [
    "BUNDLED",
    "CAPABILITY_METHODS",
    "Env",
    "Expectations",
    "ImplSpec",
    "Lockstep",
    "PageAllocator",
    "Ref",
    "Step",
    "TransportFailure",
    "build_iut",
    "compare_expectations",
    "dump_trace",
    "load_expectations",
    "load_impl",
    "load_trace",
    "render_test",
    "validate_iut",
]
