"""Router test helper for OTR interop tests.

A *peer* wraps one OTR implementation behind the JSON Lines protocol described
in ``PEER-PROTOCOL.md`` (commands on stdin, events on stdout).  This module
provides:

* :class:`PeerLike` -- the interface the router needs from a peer, so an
  in-process peer can be plugged in as well as a subprocess;
* :class:`SubprocessPeer` -- runs a peer program, sends commands, reads events
  until ``done`` (a timeout or a protocol violation raises, it never passes
  silently) and keeps the peer's stderr for failure messages;
* :class:`Router` -- holds two peers ``"A"`` and ``"B"``, carries every
  ``wire`` event to the other side as ``recv`` (in order, until the network is
  quiet, with a bound against ping-pong storms), lets a test tamper with, drop,
  duplicate, hold back or forge traffic, records everything seen on the
  network and offers small helpers (``start``, ``send``, ``expect_message``,
  ``status``, ``wait_encrypted``, SMP helpers ...).

All failures raised here are ``AssertionError`` subclasses, so pytest reports
them as test failures with a readable message.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Literal, NamedTuple, Protocol, runtime_checkable

Event = dict[str, Any]
Side = Literal["A", "B"]
SIDES: tuple[Side, Side] = ("A", "B")

MESSAGE_STATES = frozenset({"plaintext", "encrypted", "finished"})
SMP_RESULTS = frozenset({"success", "failure", "aborted", "error"})
KNOWN_EVENTS = frozenset(
    {"ready", "wire", "message", "state", "smp", "status", "error", "log", "done"}
)

# Characters of stderr quoted in failure messages.
STDERR_TAIL = 4000


def other(side: Side) -> Side:
    """The side opposite to ``side``."""
    return "B" if side == "A" else "A"


# --------------------------------------------------------------------------
# Failures
# --------------------------------------------------------------------------


class PeerFailure(AssertionError):
    """A peer misbehaved: it died, hung or broke the peer protocol."""


class PeerTimeout(PeerFailure):
    """A peer did not finish a command (or start up) in time."""


class PeerExited(PeerFailure):
    """A peer's process ended (or closed stdout) while we expected output."""


class ProtocolViolation(PeerFailure):
    """A peer printed something the peer protocol does not allow."""


class RoutingStorm(PeerFailure):
    """The peers kept answering each other beyond the router's bound."""


class ExpectationFailed(AssertionError):
    """A router assertion helper found something other than expected."""


# --------------------------------------------------------------------------
# Peers
# --------------------------------------------------------------------------


@runtime_checkable
class PeerLike(Protocol):
    """What the router needs from a peer.

    ``command`` sends one command (a JSON object; the peer or its wrapper adds
    an ``id``) and returns every event the command caused, in order, without
    the final ``done``.  ``ready`` is the startup event.  ``close`` ends the
    peer; it must be safe to call twice.
    """

    @property
    def ready(self) -> Event: ...

    def command(self, cmd: Mapping[str, Any]) -> list[Event]: ...

    def close(self) -> None: ...


def validate_event(ev: Any) -> str | None:
    """Check one event against the peer protocol; return a problem or None."""
    if not isinstance(ev, dict):
        return "event is not a JSON object"
    kind = ev.get("ev")
    if not isinstance(kind, str):
        return 'event without string member "ev"'
    if kind not in KNOWN_EVENTS:
        return f"unknown event {kind!r}"
    if kind == "wire":
        data = ev.get("data")
        if not isinstance(data, str) or not data:
            return "wire event needs a non-empty string 'data'"
    elif kind == "message":
        if not isinstance(ev.get("text"), str):
            return "message event needs a string 'text'"
        if not isinstance(ev.get("encrypted"), bool):
            return "message event needs a boolean 'encrypted'"
    elif kind == "state":
        if ev.get("state") not in MESSAGE_STATES:
            return f"state event with bad state {ev.get('state')!r}"
    elif kind == "smp":
        if "result" in ev:
            if ev["result"] not in SMP_RESULTS:
                return f"smp event with bad result {ev['result']!r}"
        elif ev.get("state") == "asked":
            q = ev.get("question")
            if q is not None and not isinstance(q, str):
                return "smp asked event with a non-string question"
        else:
            return "smp event needs 'result' or state 'asked'"
    elif kind in ("error", "log"):
        if not isinstance(ev.get("text"), str):
            return f"{kind} event needs a string 'text'"
    elif kind == "status":
        problem = Status.problem(ev)
        if problem:
            return problem
    elif kind == "ready":
        return "ready event after startup"
    return None


def _tail(text: str, limit: int = STDERR_TAIL) -> str:
    return text if len(text) <= limit else "[...]" + text[-limit:]


class SubprocessPeer:
    """A peer program run as a subprocess.

    ``argv`` is the full command line.  The constructor starts the program
    and waits for its ``ready`` event (``startup_timeout`` seconds; key
    generation may take a moment).  ``command`` waits at most ``timeout``
    seconds for ``done``.  With ``ascii_json`` the commands are sent with all
    non-ASCII characters as ``\\uXXXX`` escapes instead of raw UTF-8.
    """

    def __init__(
        self,
        argv: Sequence[str | os.PathLike[str]],
        *,
        name: str | None = None,
        timeout: float = 30.0,
        startup_timeout: float = 60.0,
        ascii_json: bool = False,
        env: Mapping[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
    ) -> None:
        self.argv: list[str] = [os.fspath(a) for a in argv]
        self.name = name or Path(self.argv[0]).name
        self.timeout = timeout
        self.ascii_json = ascii_json
        self.history: list[tuple[dict[str, Any], list[Event]]] = []
        self.returncode: int | None = None
        self._next_id = 1
        self._closed = False
        self._lines: queue.Queue[bytes | None] = queue.Queue()
        self._stderr_chunks: list[bytes] = []
        self._stderr_lock = threading.Lock()
        self._proc = subprocess.Popen(
            self.argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=dict(env) if env is not None else None,
            cwd=cwd,
        )
        assert self._proc.stdout is not None and self._proc.stderr is not None
        self._stdout_thread = threading.Thread(
            target=self._pump_stdout, args=(self._proc.stdout,), daemon=True
        )
        self._stderr_thread = threading.Thread(
            target=self._pump_stderr, args=(self._proc.stderr,), daemon=True
        )
        self._stdout_thread.start()
        self._stderr_thread.start()
        try:
            self._ready = self._read_ready(startup_timeout)
        except BaseException:
            self.kill()
            raise

    # -- plumbing -----------------------------------------------------------

    def _pump_stdout(self, stream: IO[bytes]) -> None:
        try:
            for line in iter(stream.readline, b""):
                self._lines.put(line)
        except (OSError, ValueError):
            pass
        finally:
            self._lines.put(None)

    def _pump_stderr(self, stream: IO[bytes]) -> None:
        fd = stream.fileno()
        try:
            while True:
                chunk = os.read(fd, 65536)
                if not chunk:
                    break
                with self._stderr_lock:
                    self._stderr_chunks.append(chunk)
        except (OSError, ValueError):
            pass

    @property
    def stderr(self) -> str:
        """Everything the peer wrote to stderr so far."""
        with self._stderr_lock:
            data = b"".join(self._stderr_chunks)
        return data.decode("utf-8", errors="replace")

    @property
    def pid(self) -> int:
        return self._proc.pid

    @property
    def alive(self) -> bool:
        return self._proc.poll() is None

    @property
    def ready(self) -> Event:
        return dict(self._ready)

    def _describe(self, problem: str) -> str:
        # Give the stderr reader a moment to collect the last words.
        if not self.alive:
            self._stderr_thread.join(timeout=1.0)
        err = _tail(self.stderr).rstrip()
        rc = self._proc.poll()
        state = "running" if rc is None else f"exit status {rc}"
        return (
            f"peer {self.name!r} ({state}): {problem}\n"
            f"  command line: {' '.join(self.argv)}\n"
            f"  stderr:\n{err if err else '  (empty)'}"
        )

    def _read_line(self, deadline: float, waiting_for: str) -> bytes:
        remaining = deadline - time.monotonic()
        try:
            line = self._lines.get(timeout=max(remaining, 0.0))
        except queue.Empty:
            self.kill()
            raise PeerTimeout(self._describe(f"timed out waiting for {waiting_for}")) from None
        if line is None:
            self._lines.put(None)  # keep reporting EOF
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(timeout=5)
            raise PeerExited(self._describe(f"stdout closed while waiting for {waiting_for}"))
        return line

    def _parse(self, line: bytes) -> Event:
        try:
            ev = json.loads(line.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise ProtocolViolation(
                self._describe(f"stdout line is not JSON ({exc}): {line[:300]!r}")
            ) from None
        if not isinstance(ev, dict) or not isinstance(ev.get("ev"), str):
            raise ProtocolViolation(self._describe(f"stdout line is not an event: {line[:300]!r}"))
        return ev

    def _read_ready(self, timeout: float) -> Event:
        deadline = time.monotonic() + timeout
        ev = self._parse(self._read_line(deadline, "the ready event"))
        if ev["ev"] != "ready":
            raise ProtocolViolation(self._describe(f"first event is not ready: {ev!r}"))
        fp = ev.get("our_fingerprint")
        versions = ev.get("versions")
        if not isinstance(fp, str) or not _is_fingerprint(fp):
            raise ProtocolViolation(self._describe(f"ready with bad our_fingerprint: {ev!r}"))
        if not isinstance(versions, list) or not all(v in (2, 3) for v in versions):
            raise ProtocolViolation(self._describe(f"ready with bad versions: {ev!r}"))
        return ev

    def _check_quiet(self) -> None:
        """Peers must print nothing between commands."""
        try:
            line = self._lines.get_nowait()
        except queue.Empty:
            return
        if line is None:
            self._lines.put(None)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(timeout=5)
            raise PeerExited(self._describe("peer closed stdout between commands"))
        raise ProtocolViolation(self._describe(f"output between commands: {line[:300]!r}"))

    def _encode(self, payload: Mapping[str, Any]) -> bytes:
        if not self.ascii_json:
            try:
                return (json.dumps(payload, ensure_ascii=False) + "\n").encode("utf-8")
            except UnicodeEncodeError:
                pass  # lone surrogates: only expressible as escapes
        return (json.dumps(payload, ensure_ascii=True) + "\n").encode("ascii")

    # -- public API ---------------------------------------------------------

    def command(self, cmd: Mapping[str, Any]) -> list[Event]:
        """Send ``cmd`` and return its events (without ``done``).

        An ``id`` is added unless ``cmd`` has one; ``done`` must echo it.
        """
        payload = dict(cmd)
        if "id" not in payload:
            payload["id"] = self._next_id
            self._next_id += 1
        events = self._exchange(self._encode(payload), payload["id"], f"done of {_short(payload)}")
        self.history.append((payload, events))
        if payload.get("op") == "quit":
            self._finish(timeout=5.0)
        return events

    def raw(self, line: str | bytes, *, expect_id: Any = None) -> list[Event]:
        """Send one raw line (a newline is added) and read events until ``done``.

        For testing how peers cope with malformed commands; ``done`` must
        carry ``expect_id`` (null for lines that cannot be parsed).
        """
        data = line.encode("utf-8") if isinstance(line, str) else line
        return self._exchange(data + b"\n", expect_id, f"done of raw line {data[:100]!r}")

    def _exchange(self, data: bytes, expect_id: Any, waiting_for: str) -> list[Event]:
        if self._closed:
            raise PeerFailure(self._describe(f"{waiting_for}: the peer is closed"))
        self._check_quiet()
        stdin = self._proc.stdin
        assert stdin is not None
        try:
            stdin.write(data)
            stdin.flush()
        except (OSError, ValueError):
            raise PeerExited(self._describe(f"{waiting_for}: cannot write to stdin")) from None
        deadline = time.monotonic() + self.timeout
        events: list[Event] = []
        while True:
            ev = self._parse(self._read_line(deadline, waiting_for))
            if ev["ev"] == "done":
                if ev.get("id") != expect_id or type(ev.get("id")) is not type(expect_id):
                    raise ProtocolViolation(
                        self._describe(f"done with id {ev.get('id')!r}, expected {expect_id!r}")
                    )
                return events
            problem = validate_event(ev)
            if problem is not None:
                raise ProtocolViolation(self._describe(f"{problem}: {ev!r}"))
            events.append(ev)

    def _finish(self, timeout: float) -> None:
        self._closed = True
        stdin = self._proc.stdin
        if stdin is not None:
            with contextlib.suppress(OSError):
                stdin.close()
        try:
            self._proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._stdout_thread.join(timeout=2.0)
        self._stderr_thread.join(timeout=2.0)
        for stream in (self._proc.stdout, self._proc.stderr):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        self.returncode = self._proc.returncode

    def close(self) -> None:
        """Ask the peer to quit (politely, then firmly)."""
        if self._closed:
            return
        if self.alive:
            old_timeout = self.timeout
            self.timeout = min(self.timeout, 5.0)
            try:
                self.command({"op": "quit"})
            except PeerFailure:
                pass
            finally:
                self.timeout = old_timeout
        self._finish(timeout=5.0)

    def kill(self) -> None:
        """End the process at once."""
        if self._proc.poll() is None:
            self._proc.kill()
        self._finish(timeout=5.0)

    def __enter__(self) -> SubprocessPeer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"SubprocessPeer({self.name!r}, pid={self._proc.pid})"


def _short(payload: Mapping[str, Any], limit: int = 200) -> str:
    text = json.dumps(payload, ensure_ascii=True)
    return text if len(text) <= limit else text[:limit] + "...}"


def _is_fingerprint(value: str) -> bool:
    return len(value) == 40 and all(c in "0123456789ABCDEF" for c in value)


def peer_args(
    account: str,
    peer: str,
    *,
    protocol: str | None = None,
    keyfile: str | os.PathLike[str] | None = None,
    policy: str | Sequence[str] | None = None,
    max_fragment: int | None = None,
    instance_tag: int | str | None = None,
) -> list[str]:
    """Command-line options of the peer protocol (without the program)."""
    args = ["--account", account, "--peer", peer]
    if protocol is not None:
        args += ["--protocol", protocol]
    if keyfile is not None:
        args += ["--keyfile", os.fspath(keyfile)]
    if policy is not None:
        args += ["--policy", policy if isinstance(policy, str) else ",".join(policy)]
    if max_fragment is not None:
        args += ["--max-fragment", str(max_fragment)]
    if instance_tag is not None:
        tag = f"0x{instance_tag:08x}" if isinstance(instance_tag, int) else instance_tag
        args += ["--instance-tag", tag]
    return args


# --------------------------------------------------------------------------
# Router
# --------------------------------------------------------------------------


class Message(NamedTuple):
    """A message shown to a local user."""

    text: str
    encrypted: bool


@dataclass(frozen=True)
class Packet:
    """One network message.

    ``src`` is the side that sent it (for forged traffic: the side it
    pretends to come from); it travels to ``dst``.
    """

    seq: int
    src: Side
    data: str
    injected: bool = False

    @property
    def dst(self) -> Side:
        return other(self.src)


@dataclass(frozen=True)
class Status:
    """A parsed ``status`` event."""

    state: str
    version: int | None
    our_fingerprint: str
    their_fingerprint: str | None
    trusted: bool
    ssid: str | None

    @staticmethod
    def problem(ev: Mapping[str, Any]) -> str | None:
        if ev.get("state") not in MESSAGE_STATES:
            return f"status with bad state {ev.get('state')!r}"
        if ev.get("version") not in (None, 2, 3):
            return f"status with bad version {ev.get('version')!r}"
        ours = ev.get("our_fingerprint")
        if not isinstance(ours, str) or not _is_fingerprint(ours):
            return f"status with bad our_fingerprint {ours!r}"
        theirs = ev.get("their_fingerprint")
        if theirs is not None and (not isinstance(theirs, str) or not _is_fingerprint(theirs)):
            return f"status with bad their_fingerprint {theirs!r}"
        if not isinstance(ev.get("trusted"), bool):
            return "status without boolean 'trusted'"
        ssid = ev.get("ssid")
        if ssid is not None and (
            not isinstance(ssid, str)
            or len(ssid) != 16
            or not all(c in "0123456789ABCDEF" for c in ssid)
        ):
            return f"status with bad ssid {ssid!r}"
        return None

    @classmethod
    def from_event(cls, ev: Mapping[str, Any]) -> Status:
        problem = cls.problem(ev)
        if problem is not None:
            raise ProtocolViolation(f"{problem}: {dict(ev)!r}")
        return cls(
            state=ev["state"],
            version=ev["version"],
            our_fingerprint=ev["our_fingerprint"],
            their_fingerprint=ev["their_fingerprint"],
            trusted=ev["trusted"],
            ssid=ev["ssid"],
        )


@dataclass
class Exchange:
    """Everything the peers reported while the router carried out one step.

    ``log`` holds ``(side, event)`` pairs in the order they happened, across
    both peers (``done`` events are not included).
    """

    log: list[tuple[Side, Event]] = field(default_factory=list)

    def events(self, side: Side, kind: str | None = None) -> list[Event]:
        return [ev for s, ev in self.log if s == side and (kind is None or ev["ev"] == kind)]

    def messages(self, side: Side) -> list[Message]:
        return [Message(ev["text"], ev["encrypted"]) for ev in self.events(side, "message")]

    def texts(self, side: Side) -> list[str]:
        return [m.text for m in self.messages(side)]

    def states(self, side: Side) -> list[str]:
        return [ev["state"] for ev in self.events(side, "state")]

    def errors(self, side: Side) -> list[str]:
        return [ev["text"] for ev in self.events(side, "error")]

    def wires(self, side: Side) -> list[str]:
        return [ev["data"] for ev in self.events(side, "wire")]

    def smp_results(self, side: Side) -> list[str]:
        return [ev["result"] for ev in self.events(side, "smp") if "result" in ev]

    def smp_asked(self, side: Side) -> list[str | None]:
        return [
            ev.get("question")
            for ev in self.events(side, "smp")
            if ev.get("state") == "asked" and "result" not in ev
        ]

    def extend(self, other_exchange: Exchange) -> None:
        self.log.extend(other_exchange.log)


WireHook = Callable[[Side, str], Iterable[str]]
"""``on_wire(src, data)``: what to deliver instead of ``data``.

Return ``[data]`` to pass it on, ``[]`` to drop it, ``[data, data]`` to
duplicate it, or any other strings to tamper with it.
"""


class Router:
    """Carries the network traffic between two peers ``A`` and ``B``.

    Every ``wire`` event is passed through ``on_wire`` (if set) and queued;
    unless ``auto_deliver`` is off, the queue is delivered in order after
    each step until no peer has anything more to send.  At most
    ``max_deliveries`` messages are delivered per step; more raise
    :class:`RoutingStorm`.

    Records: ``network`` (every message a peer put on the network, before
    hooks), ``deliveries`` (every message handed to a peer, including forged
    ones), ``history`` (every event of both peers) and ``last`` (the
    :class:`Exchange` of the latest step).
    """

    def __init__(
        self,
        a: PeerLike,
        b: PeerLike,
        *,
        on_wire: WireHook | None = None,
        auto_deliver: bool = True,
        max_deliveries: int = 1000,
    ) -> None:
        self.peers: dict[Side, PeerLike] = {"A": a, "B": b}
        self.on_wire = on_wire
        self.auto_deliver = auto_deliver
        self.max_deliveries = max_deliveries
        self.pending: deque[tuple[Side, str]] = deque()
        self.network: list[Packet] = []
        self.deliveries: list[Packet] = []
        self.history: list[tuple[Side, Event]] = []
        self.last = Exchange()

    # -- core ---------------------------------------------------------------

    def peer(self, side: Side) -> PeerLike:
        return self.peers[side]

    def replace(self, side: Side, peer: PeerLike, *, close_old: bool = True) -> None:
        """Swap in another peer (e.g. a restarted client) on ``side``."""
        if close_old:
            self.peers[side].close()
        self.peers[side] = peer

    def _run(self, side: Side, cmd: Mapping[str, Any], ex: Exchange) -> list[Event]:
        events = self.peers[side].command(cmd)
        for ev in events:
            ex.log.append((side, ev))
            self.history.append((side, ev))
            if ev.get("ev") == "wire":
                data = ev["data"]
                self.network.append(Packet(len(self.network), side, data))
                outgoing = [data] if self.on_wire is None else list(self.on_wire(side, data))
                for item in outgoing:
                    if not isinstance(item, str):
                        raise TypeError(f"on_wire must return strings, got {item!r}")
                    self.pending.append((side, item))
        return events

    def _deliver(self, src: Side, data: str, ex: Exchange, *, injected: bool) -> None:
        self.deliveries.append(Packet(len(self.deliveries), src, data, injected))
        self._run(other(src), {"op": "recv", "data": data}, ex)

    def flush(self, ex: Exchange | None = None) -> Exchange:
        """Deliver queued traffic (and the answers to it) until quiet."""
        ex = Exchange() if ex is None else ex
        delivered = 0
        while self.pending:
            if delivered >= self.max_deliveries:
                raise RoutingStorm(
                    self.describe(
                        f"still {len(self.pending)} messages queued after "
                        f"{delivered} deliveries in one step (ping-pong?)"
                    )
                )
            src, data = self.pending.popleft()
            delivered += 1
            self._deliver(src, data, ex, injected=False)
        return ex

    def deliver_one(self) -> Exchange:
        """Deliver only the oldest queued message (for manual stepping)."""
        ex = Exchange()
        if self.pending:
            src, data = self.pending.popleft()
            self._deliver(src, data, ex, injected=False)
        self.last = ex
        return ex

    def drop_pending(self) -> list[tuple[Side, str]]:
        """Forget queued traffic; return what was dropped."""
        dropped = list(self.pending)
        self.pending.clear()
        return dropped

    def command(self, side: Side, cmd: Mapping[str, Any]) -> Exchange:
        """Send a command to one peer, then deliver traffic until quiet."""
        ex = Exchange()
        self.last = ex
        self._run(side, cmd, ex)
        if self.auto_deliver:
            self.flush(ex)
        return ex

    def inject(self, to: Side, data: str) -> Exchange:
        """Deliver forged network data to ``to``, then route as usual."""
        ex = Exchange()
        self.last = ex
        self._deliver(other(to), data, ex, injected=True)
        if self.auto_deliver:
            self.flush(ex)
        return ex

    # -- user actions ---------------------------------------------------------

    def start(self, side: Side) -> Exchange:
        return self.command(side, {"op": "start"})

    def end(self, side: Side) -> Exchange:
        return self.command(side, {"op": "end"})

    def send(self, side: Side, text: str) -> list[Message]:
        """User on ``side`` types ``text``; return what the other side showed."""
        return self.command(side, {"op": "send", "text": text}).messages(other(side))

    def smp(self, side: Side, secret: str, question: str | None = None) -> Exchange:
        cmd: dict[str, Any] = {"op": "smp", "secret": secret}
        if question is not None:
            cmd["question"] = question
        return self.command(side, cmd)

    def smp_respond(self, side: Side, secret: str) -> Exchange:
        return self.command(side, {"op": "smp_respond", "secret": secret})

    def smp_abort(self, side: Side) -> Exchange:
        return self.command(side, {"op": "smp_abort"})

    def status(self, side: Side) -> Status:
        events = self.peers[side].command({"op": "status"})
        for ev in events:
            self.history.append((side, ev))
        statuses = [ev for ev in events if ev.get("ev") == "status"]
        if len(statuses) != 1:
            raise ProtocolViolation(
                self.describe(f"status on {side} gave {len(statuses)} status events: {events!r}")
            )
        return Status.from_event(statuses[0])

    def close(self) -> None:
        """Close both peers (also when one of them fails to close)."""
        errors: list[BaseException] = []
        for side in SIDES:
            try:
                self.peers[side].close()
            except Exception as exc:
                errors.append(exc)
        if errors:
            raise errors[0]

    def __enter__(self) -> Router:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- assertions -----------------------------------------------------------

    def fail(self, reason: str) -> ExpectationFailed:
        """Build (not raise) an ExpectationFailed with the router's context."""
        return ExpectationFailed(self.describe(reason))

    def expect_message(self, sender: Side, text: str, *, encrypted: bool | None = True) -> Exchange:
        """``sender`` sends ``text``; the other side must show exactly it.

        ``encrypted`` is the expected flag of the shown message (None: any).
        """
        ex = self.command(sender, {"op": "send", "text": text})
        shown = ex.messages(other(sender))
        ok = len(shown) == 1 and shown[0].text == text
        if ok and encrypted is not None:
            ok = shown[0].encrypted == encrypted
        if not ok:
            flag = "" if encrypted is None else f" (encrypted={encrypted})"
            raise self.fail(
                f"{sender} sent {_clip(text)!r}{flag}; {other(sender)} showed {_clip_list(shown)}"
            )
        return ex

    def expect_no_message(self, sender: Side, text: str) -> Exchange:
        """``sender`` sends ``text``; the other side must show nothing."""
        ex = self.command(sender, {"op": "send", "text": text})
        shown = ex.messages(other(sender))
        if shown:
            raise self.fail(
                f"{sender} sent {_clip(text)!r}; expected nothing shown, "
                f"{other(sender)} showed {_clip_list(shown)}"
            )
        return ex

    def expect_state(self, side: Side, state: str) -> Status:
        st = self.status(side)
        if st.state != state:
            raise self.fail(f"{side} is {st.state}, expected {state}")
        return st

    def wait_encrypted(self, *, version: int | None = None) -> tuple[Status, Status]:
        """Deliver what is queued, then require a matching encrypted session.

        Both sides must report ``encrypted``, the same ssid and version, and
        each other's fingerprints.
        """
        if self.pending:
            self.flush(self.last)
        a, b = self.status("A"), self.status("B")
        problems: list[str] = []
        if a.state != "encrypted" or b.state != "encrypted":
            problems.append(f"states A={a.state} B={b.state}")
        else:
            if a.ssid is None or a.ssid != b.ssid:
                problems.append(f"ssid A={a.ssid} B={b.ssid}")
            if a.version != b.version:
                problems.append(f"version A={a.version} B={b.version}")
            if version is not None and a.version != version:
                problems.append(f"version {a.version}, expected {version}")
            if a.their_fingerprint != b.our_fingerprint:
                problems.append("A does not see B's fingerprint")
            if b.their_fingerprint != a.our_fingerprint:
                problems.append("B does not see A's fingerprint")
        if problems:
            raise self.fail("no matching encrypted session: " + "; ".join(problems))
        return a, b

    def establish(self, initiator: Side = "A", *, version: int | None = None) -> Exchange:
        """Start OTR from ``initiator`` and require an encrypted session.

        Each side must have announced ``encrypted`` during the AKE.
        """
        ex = self.start(initiator)
        for side in SIDES:
            if "encrypted" not in ex.states(side):
                raise self.fail(f"{side} announced no encrypted state during the AKE")
        self.wait_encrypted(version=version)
        return ex

    def run_smp(
        self,
        asker: Side,
        secret: str,
        answer: str,
        *,
        question: str | None = None,
    ) -> tuple[list[str], list[str]]:
        """Complete one SMP run; return the results of (asker, responder).

        The responder must be asked (with ``question``) before it answers.
        """
        responder = other(asker)
        ex = self.smp(asker, secret, question)
        asked = ex.smp_asked(responder)
        if asked != [question]:
            raise self.fail(f"{responder} was asked {asked!r}, expected [{question!r}]")
        ex2 = self.smp_respond(responder, answer)
        ex.extend(ex2)
        return ex.smp_results(asker), ex.smp_results(responder)

    # -- traffic inspection ---------------------------------------------------

    def mark(self) -> int:
        """Position in ``network``; pass to ``wire_since`` later."""
        return len(self.network)

    def wire_since(self, mark: int = 0, src: Side | None = None) -> list[Packet]:
        return [p for p in self.network[mark:] if src is None or p.src == src]

    def wire_containing(self, needle: str, *, since: int = 0) -> list[Packet]:
        """Network messages (from ``since``) that contain ``needle`` verbatim."""
        return [p for p in self.network[since:] if needle in p.data]

    def describe(self, reason: str, *, last: int = 12) -> str:
        """A failure text with recent traffic and both peers' stderr."""
        lines = [reason, f"  last {min(last, len(self.network))} network messages:"]
        for p in self.network[-last:]:
            lines.append(f"    #{p.seq} {p.src}->{p.dst}: {_clip(p.data, 120)!r}")
        lines.append(f"  last events ({min(last, len(self.history))}):")
        for side, ev in self.history[-last:]:
            lines.append(f"    {side}: {_clip(json.dumps(ev, ensure_ascii=True), 160)}")
        for side in SIDES:
            err = getattr(self.peers[side], "stderr", None)
            if isinstance(err, str) and err.strip():
                lines.append(f"  stderr of {side}:\n{_tail(err, 1500).rstrip()}")
        return "\n".join(lines)

    def iter_events(self, side: Side, kind: str | None = None) -> Iterator[Event]:
        for s, ev in self.history:
            if s == side and (kind is None or ev.get("ev") == kind):
                yield ev


def _clip(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[:limit] + f"...({len(text)} chars)"


def _clip_list(messages: Sequence[Message]) -> str:
    if not messages:
        return "nothing"
    return ", ".join(f"{_clip(m.text)!r} (encrypted={m.encrypted})" for m in messages)
