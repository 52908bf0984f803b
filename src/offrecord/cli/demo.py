"""``offrecord demo``: Alice and Bob talk privately, and every step shows what
each user sees next to what the network carries.

The story runs over any two :class:`~offrecord.transports.base.ChatTransport`
connections: by default an in-process relay (nothing to install), or two
accounts on a real IRC or XMPP server (``--irc``, ``--xmpp``; see
``docs/demo.md``).  It shows the query, the authenticated key exchange,
encrypted messages (fragmented where the network's limit asks for it), key
rotation, the Socialist Millionaires' Protocol with a question, deniability
(a forgery made with a published MAC key that verifies), and the end of the
private conversation.
"""

from __future__ import annotations

import argparse
import asyncio
import hmac
import random
import secrets
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from offrecord import events as ev
from offrecord.account import Account
from offrecord.crypto.dsa import DSAPrivateKey, format_fingerprint, generate_private_key
from offrecord.crypto.primitives import RandomSource, hmac_sha1, system_random
from offrecord.errors import OTRError
from offrecord.transports.base import (
    ChatTransport,
    Delivered,
    Disconnected,
    Notice,
    TransportError,
)
from offrecord.transports.relay import relay_pair
from offrecord.wire.envelope import classify, frame
from offrecord.wire.fragment import Reassembler, is_fragment, parse_fragment
from offrecord.wire.messages import DataMessage, decode_message, encode_message

__all__ = [
    "DEMO_RELAY_LIMIT",
    "DemoStalled",
    "add_demo_options",
    "demo_command",
    "run_demo",
    "run_demo_async",
]

# The in-process relay carries at most this many characters per message, as
# an IRC server roughly does, so the story shows OTR fragmentation.
DEMO_RELAY_LIMIT = 400
# How long one step may wait for the other side over a real server.
STEP_TIMEOUT = 30.0

_NAMES = {0x02: "D-H Commit", 0x0A: "D-H Key", 0x11: "Reveal Signature", 0x12: "Signature",
          0x03: "Data"}  # fmt: skip

_SCRIPT = (
    ("alice", "Hi Bob, this is private."),
    ("bob", "Hello Alice! Nobody else can read this."),
    ("alice", "Keys rotate with every reply: forward secrecy."),
)
_LONG = (
    "Here is the long story I promised. A message longer than the network allows "
    "travels in pieces: OTR encrypts and authenticates the whole message, then "
    "splits it into numbered fragments that the other side puts back together "
    "before it checks and decrypts anything. Someone watching the network can "
    "count the fragments and their sizes, but learns nothing of what they say, "
    "and cannot change, drop or reorder one without the whole message being "
    "refused."
)
_FORGED_TEXT = "Pay Mallory 500 euros."
_SHOWN = 100  # characters of a long chat message shown in full


class DemoStalled(Exception):
    """A step did not complete (the network lost a message or went away)."""


def _describe(text: str) -> str:
    incoming = classify(text)
    if incoming.kind.name == "ENCODED":
        try:
            msg = decode_message(incoming.payload)
        except OTRError:
            return "unreadable OTR message"
        label = f"v{msg.version} {_NAMES.get(msg.type, '?')}"
        if isinstance(msg, DataMessage):
            label += f", keys {msg.sender_keyid}->{msg.recipient_keyid}"
            if msg.old_mac_keys:
                label += f", reveals {len(msg.old_mac_keys) // 20} old MAC key(s)"
        return label
    return incoming.kind.value


@dataclass
class _Whole:
    """A complete network message (fragments put back together)."""

    sender: str
    text: str
    plaintext: str | None = None  # what the sender typed, for a chat Data message


class _Wire:
    """The network's view: every message as sent, labelled."""

    def __init__(self, out: Callable[[str], None]) -> None:
        self.out = out
        self.messages: list[_Whole] = []
        self._reassemblers: dict[str, Reassembler] = {}

    def carried(self, sender: str, recipient: str, text: str) -> _Whole | None:
        if is_fragment(text):
            fragment = parse_fragment(text)
            reassembler = self._reassemblers.setdefault(sender, Reassembler())
            whole = reassembler.add(fragment, time.monotonic())
            label = f"fragment {fragment.k}/{fragment.n}"
            if whole is not None:
                label += f" = {_describe(whole)}"
            if 1 < fragment.k < fragment.n:
                return None  # the first and the last fragment tell the story
            if fragment.n > 2 and fragment.k == fragment.n:
                label = f"fragments 2-{fragment.k}/{fragment.n}{label[label.index(' = ') :]}"
        else:
            whole = text
            label = _describe(text)
        shown = text if len(text) <= 64 else text[:61] + "..."
        self.out(f"    network  {sender:>5} -> {recipient:<5} [{label}] {shown!r}")
        if whole is None:
            return None
        record = _Whole(sender, whole)
        self.messages.append(record)
        return record


class _Party:
    """One user: an OTR account on one transport, talking to the other user."""

    def __init__(
        self,
        label: str,
        account: Account,
        transport: ChatTransport,
        peer: str,
        peer_label: str,
        wire: _Wire,
        out: Callable[[str], None],
    ) -> None:
        self.label = label
        self.account = account
        self.transport = transport
        self.peer = peer
        self.peer_label = peer_label
        self.wire = wire
        self.out = out
        self.seen: list[ev.Event] = []
        self.gone: str | None = None
        self._changed = asyncio.Event()
        self._typed: str | None = None

    async def run(self) -> None:
        """Receive until the connection ends."""
        async for event in self.transport.events():
            if isinstance(event, Delivered):
                if event.sender != self.peer:
                    continue  # someone else on a public server: not part of the story
                for happened in self.account.receive(event.sender, event.text):
                    self.record(happened)
                await self.flush()
            elif isinstance(event, Notice):
                self.out(f"    {self.label:>5}: the network says: {event.text}")
            elif isinstance(event, Disconnected):
                self.gone = event.reason
            self._changed.set()

    async def flush(self) -> None:
        """Put on the network whatever the engine wants sent."""
        for peer, text in self.account.data_to_send():
            whole = self.wire.carried(self.label, self.peer_label, text)
            if whole is not None and self._typed is not None:
                incoming = classify(whole.text)
                if incoming.kind.name == "ENCODED" and isinstance(
                    decode_message(incoming.payload), DataMessage
                ):
                    whole.plaintext, self._typed = self._typed, None
            await self.transport.send(peer, text, otr=text.startswith("?OTR"))

    async def say(self, text: str) -> None:
        self.out(f"    {self.label:>5} types: {_abridged(text)}")
        self._typed = text
        for happened in self.account.conversation(self.peer).send(text):
            self.record(happened)
        await self.flush()

    def mark(self) -> int:
        return len(self.seen)

    async def expect(self, kind: type[ev.Event], since: int) -> ev.Event:
        """Wait for an event of ``kind`` recorded after ``since``."""
        deadline = asyncio.get_running_loop().time() + STEP_TIMEOUT
        while True:
            for happened in self.seen[since:]:
                if isinstance(happened, kind):
                    return happened
            if self.gone is not None:
                raise DemoStalled(f"{self.label}'s connection ended: {self.gone}")
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                raise DemoStalled(f"{self.label} never saw {kind.__name__}")
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except TimeoutError:
                continue

    def record(self, event: ev.Event) -> None:
        self.seen.append(event)
        self._changed.set()
        self._show(event)

    def _show(self, event: ev.Event) -> None:
        who = self.label
        if isinstance(event, ev.MessageReceived):
            lock = "encrypted" if event.encrypted else "NOT encrypted"
            self.out(f"    {who:>5} sees ({lock}): {_abridged(event.text)}")
        elif isinstance(event, ev.SessionSecured):
            ssid = event.ssid.hex()
            self.out(f"    {who:>5}: private conversation started (OTR v{event.version}), "
                     f"session id {ssid[:8]} {ssid[8:]}")  # fmt: skip
        elif isinstance(event, ev.NewFingerprint):
            self.out(f"    {who:>5}: new fingerprint for {self.peer_label}: "
                     f"{format_fingerprint(event.fingerprint)}")  # fmt: skip
        elif isinstance(event, ev.SMPRequested):
            self.out(f"    {who:>5}: {self.peer_label} asks to verify: {event.question!r}")
        elif isinstance(event, ev.SMPResult):
            verdict = "the answers match" if event.success else "the answers differ"
            marked = ", fingerprint marked verified" if event.verified else ""
            self.out(f"    {who:>5}: SMP finished: {verdict}{marked}")
        elif isinstance(event, ev.SessionFinished):
            self.out(f"    {who:>5}: {self.peer_label} ended the private conversation")
        elif isinstance(event, ev.SessionEnded):
            self.out(f"    {who:>5}: private conversation ended; back to plaintext")
        elif isinstance(event, ev.MessageNotSent):
            self.out(f"    {who:>5}: message not sent: {event.reason}")
        else:
            self.out(f"    {who:>5}: {type(event).__name__}")


def _abridged(text: str) -> str:
    if len(text) <= _SHOWN:
        return text
    return f"{text[: _SHOWN - 3]}... ({len(text)} characters)"


def _random_source(seed: int | None) -> RandomSource:
    if seed is None:
        return system_random
    rng = random.Random(seed)  # noqa: S311 - reproducible demo only, by request
    return rng.randbytes


def run_demo(
    out: Callable[[str], None] = print,
    *,
    seed: int | None = None,
    transports: tuple[ChatTransport, ChatTransport] | None = None,
    network: str | None = None,
    address_of: Callable[[ChatTransport], str] | None = None,
) -> int:
    """Run the whole story (see :func:`run_demo_async`); returns an exit status."""
    return asyncio.run(
        run_demo_async(
            out, seed=seed, transports=transports, network=network, address_of=address_of
        )
    )


def _account_address(transport: ChatTransport) -> str:
    return transport.normalize(transport.account_name)


async def run_demo_async(
    out: Callable[[str], None] = print,
    *,
    seed: int | None = None,
    transports: tuple[ChatTransport, ChatTransport] | None = None,
    network: str | None = None,
    address_of: Callable[[ChatTransport], str] | None = None,
) -> int:
    """Run the story over ``transports`` (Alice's, Bob's; not yet connected),
    by default an in-process relay.  ``seed`` makes the keys and every random
    value reproducible; ``network`` names the network for the reader;
    ``address_of`` gives, once connected, the address the other party writes
    to (by default the account name, normalised: right for XMPP and the
    relay; an IRC nick is not its account name)."""
    random_bytes = _random_source(seed)
    if transports is None:
        transports = relay_pair(max_message_size=DEMO_RELAY_LIMIT)
        network = network or (
            f"an in-process relay (at most {DEMO_RELAY_LIMIT} characters per message)"
        )
    alice_t, bob_t = transports

    def section(title: str, body: str = "") -> None:
        out("")
        out(f"== {title}")
        if body:
            out(textwrap.fill(body, 78, initial_indent="   ", subsequent_indent="   "))

    section("Long-term keys", "Each side has a DSA key; its fingerprint identifies it.")
    keys: dict[str, DSAPrivateKey] = {}
    for name in ("alice", "bob"):
        keys[name] = generate_private_key(random_bytes)
        out(f"    {name:>5}: {format_fingerprint(keys[name].fingerprint())}")

    section("Connecting", f"Both connect to {network or 'the network'}.")
    try:
        await alice_t.connect()
        try:
            await bob_t.connect()
        except BaseException:
            await alice_t.close()
            raise
    except TransportError as exc:
        out(f"    cannot connect: {exc}")
        return 1
    address = address_of or _account_address
    alice_addr, bob_addr = address(alice_t), address(bob_t)
    out(f"    alice is {alice_addr!r} ({alice_t.protocol}: account {alice_t.account_name!r}), "
        f"bob is {bob_addr!r}")  # fmt: skip
    peer_of_alice = alice_t.normalize(bob_addr)
    peer_of_bob = bob_t.normalize(alice_addr)

    wire = _Wire(out)

    def make_account(name: str, transport: ChatTransport, peer: str) -> Account:
        size = transport.max_message_size(peer)
        return Account(
            transport.account_name,
            transport.protocol,
            keys[name],
            random_bytes=random_bytes,
            max_message_size=size,
        )

    alice = _Party(
        "alice", make_account("alice", alice_t, peer_of_alice), alice_t, peer_of_alice,
        "bob", wire, out,
    )  # fmt: skip
    bob = _Party(
        "bob", make_account("bob", bob_t, peer_of_bob), bob_t, peer_of_bob, "alice", wire, out
    )
    receivers = [asyncio.create_task(alice.run()), asyncio.create_task(bob.run())]
    try:
        await _story(alice, bob, wire, section, out)
    except DemoStalled as exc:
        out(f"    the demo stopped: {exc}")
        return 1
    except TransportError as exc:
        out(f"    the network failed: {exc}")
        return 1
    finally:
        for transport in (alice_t, bob_t):
            await transport.close()
        for task in receivers:
            task.cancel()
        await asyncio.gather(*receivers, return_exceptions=True)
    out("")
    return 0


async def _story(
    alice: _Party,
    bob: _Party,
    wire: _Wire,
    section: Callable[..., None],
    out: Callable[[str], None],
) -> None:
    party = {"alice": alice, "bob": bob}

    section("Query and authenticated key exchange",
            "Alice asks for OTR; Bob's client answers, and the four AKE messages "
            "prove who holds which key and agree on fresh Diffie-Hellman keys.")  # fmt: skip
    marks = alice.mark(), bob.mark()
    alice.account.conversation(alice.peer).start()
    await alice.flush()
    await alice.expect(ev.SessionSecured, marks[0])
    await bob.expect(ev.SessionSecured, marks[1])

    section("Encrypted messages and key rotation",
            "The users see text; the network sees only ?OTR: data.  Watch the key "
            "ids: each reply acknowledges the other side's newest D-H key and both "
            "move on to fresh keys, so a stolen key cannot decrypt what came "
            "before; the MAC keys of retired keys are revealed.")  # fmt: skip
    for who, text in _SCRIPT:
        sender, receiver = party[who], party["bob" if who == "alice" else "alice"]
        mark = receiver.mark()
        await sender.say(text)
        await receiver.expect(ev.MessageReceived, mark)

    section("A long message",
            "Bob sends a message longer than one network message may be: OTR "
            "fragments it if the network needs it.")  # fmt: skip
    mark = alice.mark()
    await bob.say(_LONG)
    await alice.expect(ev.MessageReceived, mark)

    section("Socialist Millionaires' Protocol",
            "Alice checks it is really Bob by asking a question only he can "
            "answer; neither side learns anything about a wrong answer.")  # fmt: skip
    marks = alice.mark(), bob.mark()
    alice.account.conversation(alice.peer).best_session().smp_start(
        "blue", "Colour of our first bike?"
    )
    await alice.flush()
    await bob.expect(ev.SMPRequested, marks[1])
    out("    bob answers: blue")
    bob.account.conversation(bob.peer).best_session().smp_respond("blue")
    await bob.flush()
    await alice.expect(ev.SMPResult, marks[0])
    await bob.expect(ev.SMPResult, marks[1])

    section("Deniability",
            "Old MAC keys are published once they are retired, so anyone could "
            "have forged earlier messages: a transcript proves nothing.")  # fmt: skip
    _deniability(wire, out)

    section("Ending",
            "Alice ends the conversation; Bob's side refuses to send in plaintext "
            "what he meant to send privately.")  # fmt: skip
    mark = bob.mark()
    for happened in alice.account.conversation(alice.peer).end():
        alice.record(happened)
    await alice.flush()
    await bob.expect(ev.SessionFinished, mark)
    mark = bob.mark()
    await bob.say("are you there?")
    await bob.expect(ev.MessageNotSent, mark)


def _data_message(text: str) -> DataMessage | None:
    incoming = classify(text)
    if incoming.kind.name != "ENCODED":
        return None
    try:
        msg = decode_message(incoming.payload)
    except OTRError:
        return None
    return msg if isinstance(msg, DataMessage) else None


def _deniability(wire: _Wire, out: Callable[[str], None]) -> None:
    """Forge a message with a published MAC key and show that it verifies."""
    revealed: list[bytes] = []
    for whole in wire.messages:
        msg = _data_message(whole.text)
        if msg is not None and msg.old_mac_keys:
            keys = msg.old_mac_keys
            revealed += [keys[i : i + 20] for i in range(0, len(keys), 20)]
    out(f"    the network has seen {len(revealed)} published MAC key(s).")
    for whole in wire.messages:
        msg = _data_message(whole.text)
        if msg is None or whole.plaintext is None:
            continue
        for mac_key in revealed:
            if not hmac.compare_digest(hmac_sha1(mac_key, msg.authenticated_part()), msg.mac):
                continue
            original = whole.plaintext.encode()
            wanted = _FORGED_TEXT.ljust(len(original)).encode()[: len(original)]
            # AES-CTR is malleable: knowing (or guessing) the plaintext, XOR in
            # the difference to any text of the same length, then MAC the
            # result with the published key.
            delta = bytes(a ^ b for a, b in zip(original, wanted, strict=True))
            body = bytes(c ^ d for c, d in zip(msg.encrypted, delta, strict=False))
            forged = replace(msg, encrypted=body + msg.encrypted[len(delta) :])
            forged = replace(forged, mac=hmac_sha1(mac_key, forged.authenticated_part()))
            # The check a judge would make, with the standard library's HMAC.
            check = hmac.new(mac_key, forged.authenticated_part(), "sha1").digest()
            verifies = hmac.compare_digest(check, forged.mac)
            out(f"    {whole.sender} really sent: {whole.plaintext!r}")
            out(f"    anyone can now write:  {wanted.decode()!r}")
            out(f"    as {frame(encode_message(forged))[:56]}...")
            out(f"    its MAC {'verifies' if verifies else 'FAILS'} with the published key, "
                "exactly like the original's.")  # fmt: skip
            return
    out("    (no message of this conversation can be forged with them yet)")


# -- the command line ----------------------------------------------------------


def parse_host_port(text: str, default_port: int) -> tuple[str, int]:
    """``HOST``, ``HOST:PORT`` or ``[IPv6]:PORT``."""
    text = text.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        if rest and not rest.startswith(":"):
            raise ValueError(f"not a server address: {text!r}")
        port_text = rest[1:]
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
    else:
        host, port_text = text, ""
    if not host:
        raise ValueError(f"not a server address: {text!r}")
    if not port_text:
        return host, default_port
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"not a port number: {port_text!r}")
    return host, int(port_text)


def add_demo_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seed", type=int, default=None, help="reproducible randomness (testing)")
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--irc",
        metavar="HOST[:PORT]",
        default=None,
        help="run the story through an IRC server, as two nicks (--alice, --bob; random "
        "by default)",
    )
    where.add_argument(
        "--xmpp",
        metavar="HOST[:PORT]",
        nargs="?",
        const="",
        default=None,
        help="run the story through an XMPP server with two existing accounts "
        "(--alice JID --bob JID and their password files); without HOST, the "
        "server is found from the JIDs' domain",
    )
    parser.add_argument("--alice", metavar="ADDRESS", help="Alice's nick (IRC) or JID (XMPP)")
    parser.add_argument("--bob", metavar="ADDRESS", help="Bob's nick (IRC) or JID (XMPP)")
    parser.add_argument(
        "--alice-password-file", metavar="FILE", help="Alice's password: first line of FILE"
    )
    parser.add_argument(
        "--bob-password-file", metavar="FILE", help="Bob's password: first line of FILE"
    )
    parser.add_argument(
        "--tls", action="store_true", help="IRC: connect with TLS (the certificate is verified)"
    )
    parser.add_argument(
        "--pace",
        metavar="SECONDS",
        type=float,
        default=1.0,
        help="IRC: after a burst of 5 lines, one line every SECONDS (default 1.0), so the "
        "server's flood protection does not disconnect the demo",
    )
    parser.add_argument(
        "--ca-file",
        metavar="PEM",
        default=None,
        help="XMPP: also trust the CA certificates in PEM (for a private server)",
    )


def _read_password(parser: argparse.ArgumentParser, path: str | None, who: str) -> str | None:
    if path is None:
        return None
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.readline().rstrip("\r\n")
    except OSError as exc:
        parser.error(f"cannot read {who}'s password file {path}: {exc.strerror}")


def _xmpp_transports(
    args: argparse.Namespace, parser: argparse.ArgumentParser
) -> tuple[ChatTransport, ChatTransport]:
    from offrecord.transports.xmpp import XMPPTransport

    if not args.alice or not args.bob:
        parser.error("--xmpp needs --alice JID and --bob JID (two existing accounts)")
    server = None
    if args.xmpp:
        try:
            server = parse_host_port(args.xmpp, 5222)
        except ValueError as exc:
            parser.error(str(exc))
    passwords = []
    for who in ("alice", "bob"):
        password = _read_password(parser, getattr(args, f"{who}_password_file"), who)
        if password is None:
            parser.error(f"--xmpp needs --{who}-password-file FILE")
        passwords.append(password)
    try:
        return (
            XMPPTransport(args.alice, passwords[0], server=server, ca_file=args.ca_file),
            XMPPTransport(args.bob, passwords[1], server=server, ca_file=args.ca_file),
        )
    except ValueError as exc:
        parser.error(str(exc))


def _irc_transports(
    args: argparse.Namespace, parser: argparse.ArgumentParser
) -> tuple[ChatTransport, ChatTransport]:
    from offrecord.transports.irc import DEFAULT_PORT, DEFAULT_TLS_PORT, IRCTransport

    try:
        host, port = parse_host_port(args.irc, DEFAULT_TLS_PORT if args.tls else DEFAULT_PORT)
    except ValueError as exc:
        parser.error(str(exc))
    if not 0 <= args.pace <= 60:
        parser.error("--pace must be between 0 and 60 seconds")
    # Random nicks by default, so that several demos can share a server.
    number = secrets.randbelow(1000)
    nicks = (args.alice or f"alice{number:03d}", args.bob or f"bob{number:03d}")
    passwords = [
        _read_password(parser, getattr(args, f"{who}_password_file"), who)
        for who in ("alice", "bob")
    ]
    try:
        return (
            IRCTransport(host, port, nick=nicks[0], tls=args.tls, password=passwords[0],
                         interval=args.pace),
            IRCTransport(host, port, nick=nicks[1], tls=args.tls, password=passwords[1],
                         interval=args.pace),
        )  # fmt: skip
    except ValueError as exc:
        parser.error(str(exc))


def _irc_nick(transport: ChatTransport) -> str:
    from offrecord.transports.irc import IRCTransport

    assert isinstance(transport, IRCTransport)
    return transport.normalize(transport.nick)


def demo_command(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """``offrecord demo`` with the parsed options."""
    if args.xmpp is not None:
        transports = _xmpp_transports(args, parser)
        network = f"the XMPP server {args.xmpp}" if args.xmpp else "the JIDs' XMPP server"
        return run_demo(seed=args.seed, transports=transports, network=network)
    if args.irc is not None:
        transports = _irc_transports(args, parser)
        return run_demo(
            seed=args.seed,
            transports=transports,
            network=f"the IRC server {args.irc}",
            address_of=_irc_nick,
        )
    return run_demo(seed=args.seed)
