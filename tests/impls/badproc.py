"""A JSON lines implementation (``reference`` behind ``kmemspec.harness.serve``) that misbehaves on cue.

    python badproc.py MODE [PIDFILE]

MODE says what happens at the first alloc_pages of order 1: ``segv`` (a real
SIGSEGV), ``hang`` (sleeps for ever), ``garbage`` (a line that is not JSON),
``exit`` (exit status 3), ``flood`` (17 MiB with no newline), ``badname``
(an unknown violation), ``twolines`` (two replies), ``ok`` (nothing: it
conforms). With PIDFILE it first starts a grandchild (``sleep``) and writes
its pid there, so a test can check the whole process group is gone.
"""

import ctypes
import json
import os
import subprocess
import sys
import time

from kmemspec.harness.serve import _Server
from kmemspec.harness.wire import request_args


def misbehave(mode: str) -> None:
    out = sys.stdout.buffer
    if mode == "segv":
        ctypes.string_at(0)
    elif mode == "hang":
        while True:
            time.sleep(3600)
    elif mode == "garbage":
        out.write(b"this is not json\n")
    elif mode == "exit":
        sys.stderr.write("badproc: giving up on order 1\x1b[0m\x00\n")  # control characters: untrusted output
        sys.stderr.flush()
        os._exit(3)
    elif mode == "flood":
        out.write(b"x" * (17 << 20))
    elif mode == "badname":
        out.write(b'{"error": "TotallyBogus", "message": "?"}\n')
    elif mode == "twolines":
        out.write(b'{"result": null}\n{"result": null}\n')
    out.flush()


def main() -> None:
    mode = sys.argv[1]
    if len(sys.argv) > 2:
        child = subprocess.Popen(["sleep", "300"])
        with open(sys.argv[2], "a") as fh:
            fh.write(f"{child.pid}\n")
    server = _Server("reference", "tiny")
    for raw in sys.stdin.buffer:
        req = json.loads(raw)
        if req.get("op") == "bye":
            return
        if mode != "ok" and req.get("op") == "alloc_pages" and request_args(req).get("order") == 1:
            misbehave(mode)
            if mode in ("garbage", "flood", "badname", "twolines"):
                continue
        sys.stdout.buffer.write(json.dumps(server.handle(req)).encode() + b"\n")
        sys.stdout.buffer.flush()


if __name__ == "__main__":
    main()
