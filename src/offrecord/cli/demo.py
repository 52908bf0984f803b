"""``offrecord demo``: two parties talk through an in-process relay, and every
step shows what each user sees next to what the network carries."""

from __future__ import annotations

import random
import textwrap
from collections.abc import Callable
from dataclasses import replace

from offrecord import events as ev
from offrecord.account import Account
from offrecord.crypto.dsa import DSAPrivateKey, format_fingerprint, generate_private_key
from offrecord.crypto.primitives import hmac_sha1, system_random
from offrecord.session import Session
from offrecord.wire.envelope import classify, frame
from offrecord.wire.messages import DataMessage, decode_message, encode_message

__all__ = ["run_demo"]

_NAMES = {0x02: "D-H Commit", 0x0A: "D-H Key", 0x11: "Reveal Signature", 0x12: "Signature",
          0x03: "Data"}  # fmt: skip


def _describe_wire(text: str) -> str:
    incoming = classify(text)
    if incoming.kind.name == "ENCODED":
        msg = decode_message(incoming.payload)
        label = f"v{msg.version} {_NAMES.get(msg.type, '?')}"
        if isinstance(msg, DataMessage):
            label += f" (keys {msg.sender_keyid}->{msg.recipient_keyid}"
            if msg.old_mac_keys:
                label += f", reveals {len(msg.old_mac_keys) // 20} old MAC key(s)"
            label += ")"
        return label
    return incoming.kind.value


class _Relay:
    """Carries messages between the two accounts and prints the network view."""

    def __init__(self, out: Callable[[str], None], alice: Account, bob: Account) -> None:
        self.out = out
        self.parties = {"alice": alice, "bob": bob}
        self.log: list[tuple[str, str]] = []

    def pump(self) -> None:
        for _ in range(20):
            moved = False
            for name, account in self.parties.items():
                other = "bob" if name == "alice" else "alice"
                for _peer, text in account.data_to_send():
                    moved = True
                    self.log.append((name, text))
                    shown = text if len(text) <= 72 else text[:69] + "..."
                    self.out(
                        f"    network  {name:>5} -> {other:<5} [{_describe_wire(text)}] {shown!r}"
                    )
                    for event in self.parties[other].receive(name, text):
                        self._show(other, event)
            if not moved:
                return

    def _show(self, who: str, event: ev.Event) -> None:
        if isinstance(event, ev.MessageReceived):
            lock = "encrypted" if event.encrypted else "NOT encrypted"
            self.out(f"    {who:>5} sees ({lock}): {event.text}")
        elif isinstance(event, ev.SessionSecured):
            ssid = event.ssid.hex()
            self.out(f"    {who:>5}: private conversation started (OTR v{event.version}), "
                     f"session id {ssid[:8]} {ssid[8:]}")  # fmt: skip
        elif isinstance(event, ev.NewFingerprint):
            self.out(f"    {who:>5}: new fingerprint for the peer: "
                     f"{format_fingerprint(event.fingerprint)}")  # fmt: skip
        elif isinstance(event, ev.SMPRequested):
            self.out(f"    {who:>5}: the peer asks to verify: {event.question!r}")
        elif isinstance(event, ev.SMPResult):
            verdict = "the answers match" if event.success else "the answers differ"
            marked = ", fingerprint marked verified" if event.verified else ""
            self.out(f"    {who:>5}: SMP finished: {verdict}{marked}")
        elif isinstance(event, ev.SessionFinished):
            self.out(f"    {who:>5}: the peer ended the private conversation")
        elif isinstance(event, ev.MessageNotSent):
            self.out(f"    {who:>5}: message not sent: {event.reason}")
        else:
            self.out(f"    {who:>5}: {type(event).__name__}")


def _session(account: Account, peer: str) -> Session:
    return account.conversation(peer).best_session()


def run_demo(out: Callable[[str], None] = print, *, seed: int | None = None) -> int:
    """Run the whole story; ``seed`` makes it reproducible."""
    if seed is None:
        random_bytes = system_random
    else:
        rng = random.Random(seed)  # noqa: S311 - reproducible demo only, by request
        random_bytes = rng.randbytes

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
    alice = Account("alice", "demo", keys["alice"], random_bytes=random_bytes)
    bob = Account("bob", "demo", keys["bob"], random_bytes=random_bytes)
    relay = _Relay(out, alice, bob)

    section("Query and authenticated key exchange",
            "Alice asks for OTR; Bob's client answers with the four AKE messages.")  # fmt: skip
    alice.conversation("bob").start()
    relay.pump()

    section("Encrypted messages", "The users see text; the network sees only ?OTR: data.")
    script = (
        ("alice", "bob", "Hi Bob, this is private."),
        ("bob", "alice", "Hello Alice! Nobody else can read this."),
        ("alice", "bob", "Keys rotate with every reply: forward secrecy."),
    )
    for who, peer, text in script:
        out(f"    {who:>5} types: {text}")
        relay.parties[who].conversation(peer).send(text)
        relay.pump()

    section("Socialist Millionaires' Protocol",
            "Alice checks it is really Bob by asking a question only he can answer.")  # fmt: skip
    _session(alice, "bob").smp_start("blue", "Colour of our first bike?")
    relay.pump()
    out("    bob answers: blue")
    _session(bob, "alice").smp_respond("blue")
    relay.pump()

    section("Deniability",
            "Old MAC keys are published once they are retired, so anyone could have "
            "forged earlier messages: transcripts prove nothing.")  # fmt: skip
    _deniability(relay, out)

    section("Ending", "Alice ends the conversation; Bob's side refuses to send in plaintext.")
    alice.conversation("bob").end()
    relay.pump()
    for event in bob.conversation("alice").send("are you there?"):
        relay._show("bob", event)
    relay.pump()
    out("")
    return 0


def _deniability(relay: _Relay, out: Callable[[str], None]) -> None:
    """Forge an old message with a revealed MAC key and show that it verifies."""
    revealed: list[bytes] = []
    for _sender, text in relay.log:
        incoming = classify(text)
        if incoming.kind.name != "ENCODED":
            continue
        msg = decode_message(incoming.payload)
        if isinstance(msg, DataMessage) and msg.old_mac_keys:
            revealed += [msg.old_mac_keys[i : i + 20] for i in range(0, len(msg.old_mac_keys), 20)]
    for _sender, text in relay.log:
        incoming = classify(text)
        if incoming.kind.name != "ENCODED":
            continue
        msg = decode_message(incoming.payload)
        if not isinstance(msg, DataMessage):
            continue
        for mac_key in revealed:
            if hmac_sha1(mac_key, msg.authenticated_part()) != msg.mac:
                continue
            # Flip bits of the ciphertext (AES-CTR is malleable), then re-MAC it
            # with the published key: the forgery verifies like the original.
            forged = replace(msg, encrypted=bytes([msg.encrypted[0] ^ 0x01]) + msg.encrypted[1:])
            forged = replace(forged, mac=hmac_sha1(mac_key, forged.authenticated_part()))
            wire = frame(encode_message(forged))
            ok = hmac_sha1(mac_key, forged.authenticated_part()) == forged.mac
            out(f"    {len(revealed)} MAC key(s) are public; one authenticates an earlier message.")
            out(f"    anyone can now produce {wire[:60]}...")
            out(f"    a modified message whose MAC {'verifies' if ok else 'fails'} "
                "with the published key.")  # fmt: skip
            return
    out("    (no MAC key has been revealed yet)")
