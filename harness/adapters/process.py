"""``exec:CMD``: an implementation in another process, spoken to in JSON lines.

One child process serves one example after another (``init`` resets it). A
child that dies, hangs or answers garbage becomes the failure of a protocol
rule (IUT-PROCESS-ALIVE, IUT-TIMEOUT, IUT-WIRE-FORMAT) with the tail of its
stderr; its whole process group is killed and the next example starts a
fresh one. ``close()`` (and interpreter exit) leaves no child behind.
"""

from __future__ import annotations

import atexit
import functools
import json
import os
import re
import select
import shlex
import signal
import subprocess
import threading
import time
import weakref
from typing import Any, Final

from ...refmodel.errors import InvalidDefinition
from ...refmodel.machine import Machine
from ..ops import CAPABILITY_METHODS, Op, wire_ops
from ..protocol import Env, TransportFailure, validate_iut
from ..wire import MAX_LINE, PROTOCOL_VERSION, PROTOCOLS, Reply, WireError, decode_reply, decode_result, machine_message, request

STDERR_TAIL: Final = 4096  # bytes of stderr kept
STDERR_SHOWN: Final = 1500  # characters of it put into a failure message
HELLO_TIMEOUT: Final = 10.0  # starting an interpreter may take longer than one request
DEFAULT_TIMEOUT: Final = 10.0
DEFAULT_HANG_BUDGET: Final = 60.0
_EXIT_GRACE: Final = 0.5


class HangBudgetExhausted(BaseException):
    """Timeouts have cost more than the hang budget: the run stops and reports the shortest failures found.

    A BaseException, so that Hypothesis does not treat it as one more failing example.
    """


class _Tail:
    """Drains a pipe on a thread so the child never blocks on it; keeps the last bytes."""

    def __init__(self, fd: int, limit: int = STDERR_TAIL) -> None:
        self._fd, self._limit = fd, limit
        self._buf = bytearray()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._drain, name="kmemspec-stderr", daemon=True)
        self._thread.start()

    def _drain(self) -> None:
        while True:
            try:
                chunk = os.read(self._fd, 65536)
            except OSError:
                return
            if not chunk:
                return
            with self._lock:
                self._buf += chunk
                del self._buf[: max(0, len(self._buf) - self._limit)]

    def finished(self, wait: float) -> bool:
        self._thread.join(wait)
        return not self._thread.is_alive()

    def text(self, wait: float = 0.0) -> str:
        self._thread.join(wait)
        with self._lock:
            return self._buf.decode("utf-8", "replace")


class _Child:
    """One running implementation process."""

    def __init__(self, argv: list[str]) -> None:
        self.popen = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            start_new_session=True, close_fds=True,  # its own process group: killpg reaches its children too
        )
        assert self.popen.stdin and self.popen.stdout and self.popen.stderr
        self.stdin = self.popen.stdin
        self.out_fd = self.popen.stdout.fileno()
        # poll(), not select(): select() cannot watch descriptors numbered 1024 or more.
        self.poller = select.poll()
        self.poller.register(self.out_fd, select.POLLIN | select.POLLHUP | select.POLLERR)
        self.stderr = _Tail(self.popen.stderr.fileno())
        self.pending = bytearray()
        self.eof = False
        self.requests = 0
        self.last_op = ""

    @property
    def pid(self) -> int:
        return self.popen.pid

    def kill(self) -> None:
        try:
            os.killpg(self.popen.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.popen.wait()
        streams = [self.popen.stdin, self.popen.stdout]
        if self.stderr.finished(0.5):  # a grandchild that left the group may still hold stderr open
            streams.append(self.popen.stderr)
        for stream in streams:
            try:
                stream.close()  # type: ignore[union-attr]
            except OSError:
                pass

    def exit_description(self) -> str:
        try:
            code = self.popen.wait(timeout=0.3)
        except subprocess.TimeoutExpired:
            return "closed its stdout but is still running"
        if code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = f"signal {-code}"
            return f"was killed by {name} ({-code})"
        return f"exited with status {code}"


class ProcessFactory:
    """``make(machine, env)`` for an implementation behind a command; keeps one live child between examples."""

    def __init__(self, argv: list[str], *, label: str, timeout: float = DEFAULT_TIMEOUT,
                 hang_budget: float = DEFAULT_HANG_BUDGET) -> None:
        if not argv:
            raise InvalidDefinition("exec: needs a command, e.g. exec:'./my-allocator --flag'")
        if timeout <= 0:
            raise InvalidDefinition(f"--timeout must be positive, got {timeout}")
        self.argv, self.label, self.timeout, self.hang_budget = argv, label, timeout, hang_budget
        self.capabilities: frozenset[str] = frozenset()
        self.claims: frozenset[str] = frozenset()
        self.pids: list[int] = []  # every process started, so a test can check none is left
        self.hung_seconds = 0.0
        self._child: _Child | None = None
        self._declared = False
        self.version = PROTOCOL_VERSION  # what the child answered hello with: 1 gets flat requests
        _LIVE.add(self)

    @classmethod
    def from_command(cls, command: str, **kwargs: Any) -> ProcessFactory:
        try:
            argv = shlex.split(command)
        except ValueError as e:
            raise InvalidDefinition(f"exec:{command}: cannot split the command: {e}") from None
        return cls(argv, **kwargs)

    # -- the factory ----------------------------------------------------------------

    def start(self) -> None:
        """Start the child and shake hands; any failure here is a usage error (InvalidDefinition)."""
        try:
            self._ensure()
        except TransportFailure as t:
            # kmemspec.harness.serve (--isolate) names a wrong implementation on stderr: show just that.
            serve = [line for line in t.message.splitlines() if line.startswith("kmemspec serve: error: ")]
            if serve:
                raise InvalidDefinition(serve[-1].removeprefix("kmemspec serve: error: ")) from None
            raise InvalidDefinition(f"{self.label}: {t.message}") from None

    def __call__(self, machine: Machine, env: Env) -> ProcessIut:
        if self._child is not None and self._more_output(self._child):
            # Output nobody asked for, left by the last example: start this one clean, so
            # that an example's outcome never depends on the one before it.
            self._discard(self._child)
        reply = self.request({"op": "init", "machine": machine_message(machine)})
        if reply.crash is not None:
            raise TransportFailure("IUT-NO-CRASH", f"{self.label} failed to initialise for machine {machine.name}: {reply.crash}")
        if reply.violation is not None:
            raise TransportFailure("IUT-WIRE-FORMAT", f"{self.label} answered init with the violation {reply.violation.kind()}")
        return ProcessIut(self, env)

    def close(self) -> None:
        """Say bye, then kill the child's process group; idempotent."""
        child, self._child = self._child, None
        if child is None:
            return
        if child.popen.poll() is None:
            try:
                child.stdin.write(b'{"op": "bye"}\n')
                child.stdin.flush()
                child.stdin.close()
                child.popen.wait(timeout=_EXIT_GRACE)
            except (OSError, ValueError, subprocess.TimeoutExpired):
                pass
        child.kill()

    # -- requests -----------------------------------------------------------------------

    def request(self, message: dict[str, Any]) -> Reply:
        """Send one operation; return its decoded reply or raise TransportFailure."""
        child = self._ensure()
        raw = self._request(child, message, str(message.get("op")))
        try:
            return decode_reply(raw)
        except WireError as e:
            self._discard(child)
            raise TransportFailure("IUT-WIRE-FORMAT", f"{self._who(child)} answered {message.get('op')} with {_clip(json.dumps(raw))}: {e}") from None

    def _ensure(self) -> _Child:
        if self.hang_budget > 0 and self.hung_seconds >= self.hang_budget:
            raise HangBudgetExhausted(f"timeouts cost {self.hung_seconds:.1f}s, over the hang budget of {self.hang_budget:g}s")
        if self._child is not None:
            return self._child
        try:
            child = _Child(self.argv)
        except OSError as e:
            raise TransportFailure("IUT-PROCESS-ALIVE", f"cannot start {shlex.join(self.argv)}: {e.strerror or e}") from None
        self.pids.append(child.pid)
        self._child = child
        hello = self._request(child, {"op": "hello", "protocol": PROTOCOL_VERSION}, "hello")
        self._handshake(child, hello)
        return child

    def _handshake(self, child: _Child, hello: Any) -> None:
        if not isinstance(hello, dict) or type(hello.get("protocol")) is not int or hello["protocol"] not in PROTOCOLS \
                or not _strings(hello.get("capabilities")) or not _strings(hello.get("claims", [])):
            self._discard(child)
            raise TransportFailure("IUT-WIRE-FORMAT", f"{self._who(child)} answered hello with {_clip(json.dumps(hello))}; "
                                                      f"expected {{\"protocol\": {PROTOCOL_VERSION}, \"capabilities\": [strings], \"claims\": [strings]}} "
                                                      f"(this kmemspec speaks protocols {', '.join(map(str, PROTOCOLS))})")
        self.version = hello["protocol"]
        probe = type("Declared", (), {"capabilities": hello.get("capabilities"), "claims": hello.get("claims", [])})()
        for methods in CAPABILITY_METHODS.values():
            for method in methods:
                setattr(probe, method, lambda *a: None)
        try:
            caps, claims = validate_iut(probe, self.label)
        except InvalidDefinition as e:
            self._discard(child)
            raise TransportFailure("IUT-WIRE-FORMAT", str(e).removeprefix(f"{self.label}: ")) from None
        if self._declared and (caps, claims) != (self.capabilities, self.claims):
            self._discard(child)
            raise TransportFailure("IUT-WIRE-FORMAT", f"a restarted {self._who(child)} declared capabilities {sorted(caps)} and claims {sorted(claims)}, "
                                                      f"not {sorted(self.capabilities)} and {sorted(self.claims)} as before")
        self.capabilities, self.claims, self._declared = caps, claims, True

    def _request(self, child: _Child, message: dict[str, Any], op: str) -> Any:
        if op != "hello" and self._more_output(child):  # a late second line to the previous request
            self._discard(child)
            raise TransportFailure("IUT-WIRE-FORMAT", f"{self._who(child)} wrote more than one line in reply to {child.last_op}")
        child.requests += 1
        try:
            child.stdin.write(json.dumps(message, separators=(",", ":")).encode() + b"\n")
            child.stdin.flush()
        except (BrokenPipeError, ConnectionResetError, ValueError):
            raise self._died(child, op) from None
        line = self._read_line(child, op)
        if self._more_output(child, poll=False):
            self._discard(child)
            raise TransportFailure("IUT-WIRE-FORMAT", f"{self._who(child)} wrote more than one line in reply to {op}")
        child.last_op = op
        try:
            return json.loads(line)
        except (ValueError, UnicodeDecodeError):
            self._discard(child)
            raise TransportFailure("IUT-WIRE-FORMAT", f"{self._who(child)} answered {op} with a line that is not JSON: {_clip(repr(line))}") from None

    def _more_output(self, child: _Child, *, poll: bool = True) -> bool:
        """Did the child write more than was asked for? (Its stdout closing is not output.)

        Without ``poll`` only what was already read counts: a second line written
        with the reply arrives in the same read, and the per-request syscall is saved.
        """
        if poll and not child.pending and not child.eof and child.poller.poll(0):
            chunk = os.read(child.out_fd, 65536)
            child.pending += chunk
            child.eof = not chunk
        return bool(child.pending)

    def _read_line(self, child: _Child, op: str) -> bytes:
        timeout = max(self.timeout, HELLO_TIMEOUT) if op == "hello" else self.timeout
        deadline = time.monotonic() + timeout
        buf = child.pending
        while True:
            nl = buf.find(b"\n")
            if nl >= 0:
                line = bytes(buf[:nl])
                del buf[: nl + 1]
                return line
            if len(buf) > MAX_LINE:
                self._discard(child)
                raise TransportFailure("IUT-WIRE-FORMAT", f"{self._who(child)} answered {op} with more than {MAX_LINE >> 20} MiB without a newline "
                                                          f"(it begins {_clip(repr(bytes(buf[:80])))})")
            if child.eof:
                raise self._died(child, op)
            left = deadline - time.monotonic()
            if left <= 0:
                self.hung_seconds += timeout
                partial = f" (it had written {_clip(repr(bytes(buf)))} without a newline)" if buf else ""
                self._discard(child)
                raise TransportFailure("IUT-TIMEOUT", f"{self._who(child)} did not answer {op} within {timeout:g}s "
                                                      f"(--timeout){partial}; its process group was killed{self._stderr(child)}")
            # Wake up now and then: a grandchild holding stdout open hides the child's death from EOF.
            ready = child.poller.poll(min(left, 0.05) * 1000)
            if not ready:
                if child.popen.poll() is not None:
                    raise self._died(child, op)
                continue
            chunk = os.read(child.out_fd, 65536)
            if not chunk:
                raise self._died(child, op)
            buf += chunk

    # -- failures ---------------------------------------------------------------------------

    def _who(self, child: _Child) -> str:
        return f"the implementation process (pid {child.pid})"

    def _died(self, child: _Child, op: str) -> TransportFailure:
        started = time.monotonic()
        how = child.exit_description()
        stderr = self._stderr(child, wait=0.2)
        self._discard(child)
        self.hung_seconds += time.monotonic() - started  # a process that dies slowly costs time like a hang
        return TransportFailure("IUT-PROCESS-ALIVE", f"{self._who(child)} {how} during {op} (request {child.requests}){stderr}")

    def _stderr(self, child: _Child, wait: float = 0.0) -> str:
        text = _printable(child.stderr.text(wait)).strip()
        return f"; its stderr ends:\n{text[-STDERR_SHOWN:]}" if text else "; it wrote nothing to stderr"

    def _discard(self, child: _Child) -> None:
        child.kill()
        if self._child is child:
            self._child = None


class ProcessIut:
    """The protocol's methods, each one request to the child process."""

    def __init__(self, factory: ProcessFactory, env: Env) -> None:
        self._factory, self.env = factory, env
        self.capabilities, self.claims = factory.capabilities, factory.claims
        # One method per operation of the declared capabilities, derived from the operation table.
        for o in wire_ops().values():
            if o.capability in self.capabilities:
                setattr(self, o.name, functools.partial(self._call, o))

    def _call(self, o: Op, *args: Any) -> Any:
        reply = self._factory.request(request(o, args, int(self.env.context), self._factory.version))
        for _ in range(reply.might_sleep):
            self.env.might_sleep()
        for _ in range(reply.slept):
            self.env.sleep()
        for violation in reply.reports:
            self.env.report(violation)
        if reply.crash is not None:  # the implementation failed internally and said so
            raise TransportFailure("IUT-NO-CRASH", f"{self._factory.label} raised {reply.crash}")
        if reply.violation is not None:
            raise reply.violation
        try:
            return decode_result(o, reply.result)
        except WireError as e:
            raise TransportFailure("IUT-WIRE-FORMAT", f"{o.name}: {e}") from None


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def _strings(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _printable(text: str) -> str:
    """Untrusted output made safe for terminals, XML and HTML: control characters become \\xNN."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def _clip(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} chars)"


_LIVE: weakref.WeakSet[ProcessFactory] = weakref.WeakSet()


@atexit.register
def _close_all() -> None:
    for factory in list(_LIVE):
        factory.close()
