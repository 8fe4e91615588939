"""``python -m kmemspec.harness.serve IMPL --machine M``: any implementation behind the JSON lines protocol.

This is what ``kmemspec check IMPL --isolate`` runs: the implementation (a
Python factory, a ``c:`` library, a bundled one) lives in this child process,
so a crash, a hang or a runaway allocation is the child's, and the suite
reports it. Requests come on stdin, replies go to stdout, one line each.
"""

from __future__ import annotations

import argparse
import json
import sys
import traceback
from typing import Any, BinaryIO, Sequence

from ..refmodel.context import Context
from ..refmodel.errors import KmemspecError, Violation
from ..refmodel.machine import machine_from_dict
from ..refmodel.presets import load_machine
from .loader import build_iut, load_impl
from .protocol import Env
from .ops import Kind
from .wire import PROTOCOL_VERSION, PROTOCOLS, WIRE_OPS, decode_bytes, encode_result, request_args

#: The server's exit status for a usage error (a wrong path, a factory that raises): the suite shows its message.
USAGE_EXIT = 2


class _RecordingEnv(Env):
    """Counts what the implementation did to its env; the suite replays it on its own env."""

    def __init__(self) -> None:
        super().__init__()
        self.events: dict[str, Any] = {}

    def might_sleep(self) -> None:
        self.events["might_sleep"] = self.events.get("might_sleep", 0) + 1

    def sleep(self) -> None:
        self.events["slept"] = self.events.get("slept", 0) + 1

    def report(self, violation: Violation) -> None:
        if not isinstance(violation, Violation):
            raise TypeError(f"env.report() takes a kmemspec Violation, got {type(violation).__name__}")
        self.events.setdefault("reports", []).append(violation.kind())


class _Server:
    def __init__(self, spec: str, machine_spec: str) -> None:
        self.impl = load_impl(spec)
        self.env = _RecordingEnv()
        self.iut, self.caps, self.claims = build_iut(self.impl.factory, load_machine(machine_spec), self.env, self.impl.label)

    def handle(self, req: dict[str, Any]) -> dict[str, Any] | None:
        op = req.get("op")
        if op == "hello":
            asked = req.get("protocol")
            version = asked if asked in PROTOCOLS else PROTOCOL_VERSION  # answer an older suite in its own version
            return {"protocol": version, "capabilities": sorted(self.caps), "claims": sorted(self.claims), "name": self.impl.label}
        if op == "init":
            self._close()
            described = {k: v for k, v in req["machine"].items() if k != "free_ranges"}  # derived, not part of the file format
            self.iut, _, _ = build_iut(self.impl.factory, machine_from_dict(described), self.env, self.impl.label)
            return {"result": None}
        wire = WIRE_OPS.get(str(op))
        if wire is None:
            return {"crash": f"unknown op {op!r}"}
        self.env.events = {}
        self.env.context = Context(req.get("context", 0))
        given = request_args(req)
        args = [decode_bytes(given[a.name]) if a.kind is Kind.BYTES else given[a.name] for a in wire.args]
        try:
            result = getattr(self.iut, wire.name)(*args)
        except Violation as v:
            return {"error": v.kind(), "message": str(v), **self.env.events}
        return {"result": encode_result(wire, result), **self.env.events}

    def _close(self) -> None:
        close = getattr(self.iut, "close", None)
        if callable(close):
            close()


def serve(spec: str, machine_spec: str, stdin: BinaryIO, stdout: BinaryIO) -> int:
    server = _Server(spec, machine_spec)
    for raw in stdin:
        req = json.loads(raw)
        if req.get("op") == "bye":
            break
        try:
            reply = server.handle(req)
        except Exception as e:  # the implementation's own bug: tell the suite, then carry on
            traceback.print_exc(file=sys.stderr)
            sys.stderr.flush()
            reply = {"crash": f"{type(e).__name__}: {e}"}
        try:
            line = json.dumps(reply, separators=(",", ":"))
        except (TypeError, ValueError):  # a result JSON cannot carry: let the suite judge its type
            line = json.dumps({"result": repr(reply.get("result"))})
        stdout.write(line.encode() + b"\n")
        stdout.flush()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m kmemspec.harness.serve", description=__doc__.splitlines()[0])
    p.add_argument("impl")
    p.add_argument("--machine", default="tiny", help="the machine to probe capabilities with (default: tiny)")
    args = p.parse_args(argv)
    try:
        return serve(args.impl, args.machine, sys.stdin.buffer, sys.stdout.buffer)
    except KmemspecError as e:
        print(f"kmemspec serve: error: {e}", file=sys.stderr)
        return USAGE_EXIT


if __name__ == "__main__":
    sys.exit(main())
