"""No secret ever reaches a log, a ``repr()``/``str()`` or an exception message.

Whole conversations run with every logger at DEBUG: AKE (v3 and v2), data
messages both ways with fragmentation and heartbeats, SMP with a question
(success, failure, abort), the extra symmetric key, a refresh, the end,
storage save/load, the key commands of the CLI, and a long list of bad
input (forged, truncated and bit-flipped messages, malformed SMP, corrupt
key files, API misuse).  Meanwhile every secret the engine creates is
recorded at its source: each random draw of 16 bytes or more (DH and SMP
exponents, the AKE's r), each DH shared secret, every AKE and data-phase
key (AES, MAC, secbytes, extra symmetric key), the SMP secrets (the user's
answer and the derived 256-bit value), every exponentiation result of SMP,
the DSA private keys, and the plaintext of every message.

Then everything text-like that the run produced is searched for each secret
in decimal, hex, base64, raw bytes and bytes-repr form
(:mod:`tests.security.scanner`): log records (message, arguments,
tracebacks), the ``repr()`` and ``str()`` of every event and of every
offrecord object reachable from the accounts, sessions, stores and events,
the messages of every exception raised, and the CLI's output.

SMP questions: a question travels encrypted, like message text, and is
shown only to the peer's user; it is treated as plaintext here (kept out of
``repr()``s, logs and exception messages; the ``SMPRequested.question``
attribute carries it to the application).
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import logging
import random
import warnings
from collections.abc import Callable, Iterator
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

import pytest

from offrecord import events as ev
from offrecord.account import Account
from offrecord.ake import AKEKeys
from offrecord.cli.main import main as cli_main
from offrecord.crypto import dh
from offrecord.crypto.dsa import DSAPrivateKey, generate_private_key
from offrecord.errors import OTRError
from offrecord.keys import PairKeys
from offrecord.policy import Policy
from offrecord.session import MessageState
from offrecord.smp import SMP
from offrecord.storage import LibotrStore, MemoryStore
from offrecord.wire.envelope import classify, frame
from offrecord.wire.fragment import Reassembler, parse_fragment
from offrecord.wire.messages import DataMessage, decode_message, encode_message
from offrecord.wire.tlv import TLV, TLVType, decode_tlvs
from tests.security.scanner import SecretScanner, representations

# --- recording secrets where they are made --------------------------------------------


class Recorder:
    """Wraps the engine's sources of secrets and remembers every value."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.scanner = SecretScanner()
        self._monkeypatch = monkeypatch
        self._wrap_module_function(dh, "generate_keypair", self._keypair)
        self._wrap_module_function(dh, "shared_secret", lambda s: self.add("DH shared secret", s))
        import offrecord.ake as ake_module
        import offrecord.session as session_module

        self._wrap_module_function(ake_module, "derive_ake_keys", self._ake_keys)
        self._wrap_module_function(
            session_module, "smp_secret", lambda v: self.add("SMP secret value", v)
        )
        original_derive = PairKeys.derive.__func__  # type: ignore[attr-defined]

        def derive(cls: type[PairKeys], ours: dh.DHKeyPair, their_public: int) -> PairKeys:
            keys: PairKeys = original_derive(cls, ours, their_public)
            for name in ("secbytes", "send_aes", "send_mac", "recv_aes", "recv_mac"):
                self.add(f"session key {name}", getattr(keys, name))
            self.add("extra symmetric key", keys.extra_symmetric_key())
            return keys

        monkeypatch.setattr(PairKeys, "derive", classmethod(derive))
        original_pow = SMP._pow_secret

        def pow_secret(smp: SMP, base: int, exponent: int) -> int:
            result = original_pow(smp, base, exponent)
            if result > 1:
                self.add("SMP exponentiation", result)
            return result

        monkeypatch.setattr(SMP, "_pow_secret", pow_secret)

    def _wrap_module_function(self, module: Any, name: str, record: Callable[[Any], Any]) -> None:
        original = getattr(module, name)

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            result = original(*args, **kwargs)
            record(result)
            return result

        self._monkeypatch.setattr(module, name, wrapper)

    def _keypair(self, pair: dh.DHKeyPair) -> None:
        self.add("DH private exponent", pair.secret)

    def _ake_keys(self, keys: AKEKeys) -> None:
        for name in ("c", "c_prime", "m1", "m2", "m1_prime", "m2_prime"):
            self.add(f"AKE key {name}", getattr(keys, name))

    def add(self, name: str, value: int | bytes | str) -> int | bytes | str:
        self.scanner.add(name, value)
        return value

    def random_source(self, seed: str) -> Callable[[int], bytes]:
        rng = random.Random(seed)

        def draw(n: int) -> bytes:
            out = rng.randbytes(n)
            if n >= 16:  # 4-byte draws are instance tags, which are public
                self.add("random draw", out)
            return out

        return draw

    def dsa_key(self, seed: str) -> DSAPrivateKey:
        key = generate_private_key(random.Random(seed).randbytes)
        self.add("DSA private x", key.x)
        return key


# --- gathering everything text-like ------------------------------------------------------


class Haystack:
    """Texts to scan, with where each came from."""

    def __init__(self) -> None:
        self.texts: list[tuple[str, str]] = []
        self.types: set[str] = set()
        self._seen: set[int] = set()
        self._alive: list[object] = []  # so that ids of visited objects are not reused

    def add(self, where: str, text: str) -> None:
        self.texts.append((where, text))

    def exception(self, where: str, exc: BaseException) -> None:
        self.types.add(type(exc).__name__)
        self.add(f"{where}: str(exception)", str(exc))
        self.add(f"{where}: repr(exception)", repr(exc))

    def events(self, where: str, events: list[ev.Event]) -> None:
        for event in events:
            self.objects(f"{where}: event", event)

    def objects(self, where: str, root: object) -> None:
        """repr() and str() of ``root`` and every offrecord object reachable
        from it through attributes, slots and containers."""
        stack: list[tuple[object, int]] = [(root, 0)]
        while stack:
            obj, depth = stack.pop()
            if id(obj) in self._seen or depth > 12:
                continue
            self._seen.add(id(obj))
            self._alive.append(obj)
            if isinstance(obj, dict):
                stack.extend((v, depth + 1) for v in obj.values())
                stack.extend((k, depth + 1) for k in obj if not isinstance(k, int | str | bytes))
                continue
            if isinstance(obj, list | tuple | set | frozenset):
                stack.extend((v, depth + 1) for v in obj)
                continue
            module = type(obj).__module__
            if not (module.startswith("offrecord") or isinstance(obj, BaseException)):
                continue
            self.types.add(type(obj).__name__)
            self.add(f"{where}: repr({type(obj).__name__})", repr(obj))
            self.add(f"{where}: str({type(obj).__name__})", str(obj))
            for child in _attributes(obj):
                stack.append((child, depth + 1))


def _attributes(obj: object) -> Iterator[object]:
    if hasattr(obj, "__dict__"):
        yield from vars(obj).values()
    for cls in type(obj).__mro__:
        for slot in getattr(cls, "__slots__", ()):
            with contextlib.suppress(AttributeError):
                yield getattr(obj, slot)


class LogCapture(logging.Handler):
    def __init__(self, haystack: Haystack) -> None:
        super().__init__(logging.DEBUG)
        self.haystack = haystack
        self.records = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.records += 1
        where = f"log record of {record.name}"
        try:
            self.haystack.add(where, record.getMessage())
        except Exception as exc:  # a record that cannot even be formatted
            self.haystack.add(where, f"{record.msg!r} {exc!r}")
        self.haystack.add(where + " (arguments)", repr(record.args))
        if record.exc_info:
            self.haystack.add(where + " (traceback)", logging.Formatter().formatException(
                record.exc_info))  # fmt: skip
        if record.stack_info:
            self.haystack.add(where + " (stack)", record.stack_info)


@pytest.fixture
def debug_logging() -> Iterator[tuple[Haystack, LogCapture]]:
    """Root and every offrecord logger at DEBUG, captured."""
    haystack = Haystack()
    handler = LogCapture(haystack)
    root = logging.getLogger()
    saved = (root.level, logging.getLogger("offrecord").level)
    names = [n for n in logging.root.manager.loggerDict if n.startswith("offrecord")]
    saved_levels = {n: logging.getLogger(n).level for n in names}
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    logging.getLogger("offrecord").setLevel(logging.DEBUG)
    for name in names:
        logging.getLogger(name).setLevel(logging.DEBUG)
    logging.captureWarnings(True)
    try:
        yield haystack, handler
    finally:
        logging.captureWarnings(False)
        root.removeHandler(handler)
        root.setLevel(saved[0])
        logging.getLogger("offrecord").setLevel(saved[1])
        for name, level in saved_levels.items():
            logging.getLogger(name).setLevel(level)


# --- the conversations ---------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Talk:
    """Two accounts, the wire between them, and everything they said."""

    def __init__(self, rec: Recorder, hay: Haystack, *, version: int, seed: str) -> None:
        self.rec, self.hay, self.clock = rec, hay, Clock()
        policy = Policy.OPPORTUNISTIC if version == 3 else Policy.ALLOW_V2 | Policy.ERROR_START_AKE
        self.accounts = {
            name: Account(name, "prpl-secret", rec.dsa_key(f"{seed}/{name}/dsa"), policy=policy,
                          random_bytes=rec.random_source(f"{seed}/{name}"), clock=self.clock,
                          max_message_size=180)
            for name in ("alice", "bob")
        }  # fmt: skip
        self.wire: list[str] = []

    def other(self, name: str) -> str:
        return "bob" if name == "alice" else "alice"

    def pump(self) -> list[ev.Event]:
        seen: list[ev.Event] = []
        for _ in range(40):
            moved = False
            for name in ("alice", "bob"):
                for _peer, text in self.accounts[name].data_to_send():
                    moved = True
                    self.wire.append(text)
                    got = self.accounts[self.other(name)].receive(name, text)
                    self.hay.events("received", got)
                    seen += got
            if not moved:
                return seen
        raise AssertionError("never quiet")

    def session(self, name: str) -> Any:
        return self.accounts[name].conversation(self.other(name)).best_session()

    def say(self, sender: str, text: str) -> None:
        self.rec.add("plaintext", text)
        self.hay.events("send", self.accounts[sender].conversation(self.other(sender)).send(text))
        shown = [e for e in self.pump() if isinstance(e, ev.MessageReceived)]
        assert [m.text for m in shown][-1:] == [text]


def _conversation(talk: Talk, version: int) -> None:
    rec = talk.rec
    talk.say("alice", "a tagged hello to start with, which is plaintext anyway 1f9a3c")
    if version == 2:
        talk.accounts["alice"].conversation("bob").start()
    talk.pump()
    assert talk.session("alice").msgstate is MessageState.ENCRYPTED
    for i in range(6):  # keys rotate; long messages are fragmented
        talk.say("alice", f"first secret message number {i}: the eagle lands at {i * 7919}")
        talk.clock.now += 61  # the next message earns a heartbeat
        talk.say("bob", f"second secret reply {i}: " + "confidential " * 20)
    # SMP with a question: success, failure, abort mid-way
    for answer, bob_answer in (("correct horse battery", "correct horse battery"),
                               ("staple 4711 staple", "a different answer 0815")):  # fmt: skip
        rec.add("SMP answer", answer)
        rec.add("SMP answer", bob_answer)
        question = rec.add("SMP question", f"What is the answer, {answer[:5]} edition?")
        assert isinstance(question, str)
        talk.session("alice").smp_start(answer, question)
        talk.hay.events("smp", talk.pump())
        talk.hay.objects("smp pending", talk.accounts["bob"])
        talk.session("bob").smp_respond(bob_answer)
        talk.hay.events("smp", talk.pump())
    rec.add("SMP answer", "never finished secret")
    talk.session("bob").smp_start("never finished secret")
    talk.pump()
    talk.hay.objects("smp pending without question", talk.accounts["alice"])
    talk.session("alice").smp_abort()
    talk.pump()
    # the extra symmetric key, both ways
    for name in ("alice", "bob"):
        key = talk.session(name).extra_symmetric_key(7, b"file-transfer-token-secret")
        rec.add("extra symmetric key", key)
        rec.add("extra symmetric key data", "file-transfer-token-secret")
        talk.hay.events("symkey", talk.pump())
    # a refresh, then the end
    talk.accounts["bob"].conversation("alice").start()
    talk.pump()
    talk.say("bob", "after the refresh, still a secret 31337 message")
    talk.hay.objects("mid-conversation", talk.accounts)
    talk.hay.events("end", talk.accounts["alice"].conversation("bob").end())
    talk.pump()
    talk.hay.objects("after end", talk.accounts)


def _bad_input(talk: Talk) -> None:
    """Forged, broken and misused input: events and exception messages."""
    hay = talk.hay
    alice, bob = talk.accounts["alice"], talk.accounts["bob"]
    alice.conversation("bob").start()
    talk.pump()
    talk.say("alice", "one more secret before the attack 90210")
    alice.conversation("bob").send("the message the attacker mangles 27182")
    talk.rec.add("plaintext", "the message the attacker mangles 27182")
    wire = [text for _, text in alice.data_to_send()]
    whole = wire[0] if len(wire) == 1 else _join_fragments(wire)
    payload = classify(whole).payload
    rng = random.Random(5)
    for i in range(60):
        mutated = bytearray(payload)
        if i % 3 == 0:
            mutated[rng.randrange(len(mutated))] ^= 1 << rng.randrange(8)
        elif i % 3 == 1:
            del mutated[rng.randrange(len(mutated)) :]
        else:
            mutated[rng.randrange(len(mutated))] = rng.randrange(256)
        try:
            decode_message(bytes(mutated))
        except OTRError as exc:
            hay.exception("decode_message", exc)
        hay.events("bad data", bob.receive("alice", frame(bytes(mutated))))
    # replay, then the real one
    msg = decode_message(payload)
    assert isinstance(msg, DataMessage)
    hay.events("real", bob.receive("alice", frame(payload)))
    hay.events("replay", bob.receive("alice", frame(payload)))
    hay.events("forged MAC", bob.receive("alice", frame(encode_message(
        dataclasses.replace(msg, mac=bytes(20))))))  # fmt: skip
    # broken framing, fragments and TLVs
    framing = [
        "?OTR:AAMD=====.",
        "?OTR|0|0,1,1,x,",
        "?OTR,0,0,,",
        "?OTR:\x00.",
        "?OTR|00000100|00000000,00001,00002,abc,",
        "?OTRv\u00ff?",
        "?OTR Error: %n",
    ]
    for text in framing:
        hay.events("framing", bob.receive("alice", text))
        for parse in (classify, parse_fragment):
            try:
                parse(text)
            except OTRError as exc:
                hay.exception(parse.__name__, exc)
    for blob in (b"\x00\x01\xff\xff", b"\x00", b"\x00\x02\x00\x05abc"):
        try:
            decode_tlvs(blob)
        except OTRError as exc:
            hay.exception("decode_tlvs", exc)
    # malformed SMP, received in an encrypted session
    smp_message = SMP(talk.rec.random_source("smp-bad")).start(2**200 + 12345, "q?")[0]
    for cut in (0, 5, 100, len(smp_message.value) - 1):
        tlv = TLV(TLVType.SMP1Q, smp_message.value[:cut] + b"\x01")
        hay.objects("smp tlv", tlv)
        talk.session("alice").send_data("", (tlv,))
        hay.events("bad smp", talk.pump())
    for kind in (TLVType.SMP2, TLVType.SMP3, TLVType.SMP4):
        talk.session("alice").send_data("", (TLV(kind, smp_message.value),))
        hay.events("smp out of order", talk.pump())
    # API misuse
    misuse: list[Callable[[], object]] = [
        lambda: talk.session("bob").smp_respond("an answer nobody asked for 4242"),
        lambda: Account("x", "y", alice.private_key, instance_tag=5),
        lambda: talk.session("bob").send_data("nul\x00inside secret text 1234"),
    ]
    talk.rec.add("plaintext", "nul\x00inside secret text 1234")
    talk.rec.add("SMP answer", "an answer nobody asked for 4242")
    for call in misuse:
        try:
            call()
        except OTRError as exc:
            hay.exception("misuse", exc)
    alice.conversation("bob").end()
    talk.pump()
    try:
        talk.session("alice").smp_start("secret while not encrypted 5555")
    except OTRError as exc:
        talk.rec.add("SMP answer", "secret while not encrypted 5555")
        hay.exception("misuse", exc)
    hay.objects("after bad input", talk.accounts)


def _join_fragments(pieces: list[str]) -> str:
    reassembler = Reassembler()
    out = None
    for piece in pieces:
        out = reassembler.add(piece, 0.0)
    assert out is not None
    return out


def _storage(rec: Recorder, hay: Haystack, tmp_path: Path) -> None:
    key = rec.dsa_key("storage/key")
    store = LibotrStore(tmp_path / "store")
    store.save_private_key("carol@example.org", "prpl-jabber", key)
    store.save_instance_tag("carol@example.org", "prpl-jabber", 0x12345678)
    store.add_fingerprint("carol@example.org", "prpl-jabber", "dave", bytes(range(20)), "smp")
    loaded = LibotrStore(tmp_path / "store")
    assert loaded.get_private_key("carol@example.org", "prpl-jabber") == key
    listed = loaded.list_fingerprints("carol@example.org", "prpl-jabber")
    hay.objects("store", [store, loaded, loaded.list_key_accounts(), listed])
    memory = MemoryStore()
    memory.save_private_key("carol@example.org", "prpl-jabber", key)
    hay.objects("memory store", memory)
    account = Account.from_store(loaded, "carol@example.org", "prpl-jabber")
    hay.objects("account from store", account)
    # corrupt the key file in ways that put key material next to the error
    text = loaded.private_key_path.read_text()
    x_hex = format(key.x, "X")
    corruptions = [
        text.replace(x_hex, x_hex[:10] + "!" + x_hex[10:]),
        text.replace(x_hex, x_hex[:-1] + "#"),
        text[: text.index(x_hex) + 20],
        text.replace("(x #", '(x "'),
        text.replace(")))", "))"),
    ]
    for i, bad in enumerate(corruptions):
        directory = tmp_path / f"bad{i}"
        directory.mkdir()
        (directory / loaded.private_key_path.name).write_text(bad)
        try:
            LibotrStore(directory).get_private_key("carol@example.org", "prpl-jabber")
        except OTRError as exc:
            hay.exception(f"corrupt key file {i}", exc)


def _cli(rec: Recorder, hay: Haystack, tmp_path: Path) -> None:
    store = tmp_path / "cli-store"
    commands = [
        ["keys", "generate", "erin@example.org", "prpl-irc", "--store", str(store)],
        ["keys", "list", "--store", str(store)],
        ["fingerprints", "--store", str(store)],
        ["export", "--to", str(tmp_path / "exported"), "--store", str(store)],
        ["keys", "generate", "erin@example.org", "prpl-irc", "--store", str(store)],
    ]
    for argv in commands:
        out, err = io.StringIO(), io.StringIO()
        with redirect_stdout(out), redirect_stderr(err), contextlib.suppress(SystemExit):
            cli_main(argv)
        hay.add(f"cli {argv[:2]} stdout", out.getvalue())
        hay.add(f"cli {argv[:2]} stderr", err.getvalue())
        if argv[1] == "generate":
            key = LibotrStore(store).get_private_key("erin@example.org", "prpl-irc")
            assert key is not None
            rec.add("DSA private x (CLI)", key.x)


@pytest.mark.parametrize("version", [3, 2])
def test_no_secret_in_logs_reprs_or_errors(
    version: int,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    debug_logging: tuple[Haystack, LogCapture],
) -> None:
    hay, handler = debug_logging
    rec = Recorder(monkeypatch)
    logging.getLogger("offrecord.test").debug("logging is on: %s", "yes")
    with warnings.catch_warnings():
        warnings.simplefilter("default")
        talk = Talk(rec, hay, version=version, seed=f"secrets/v{version}")
        _conversation(talk, version)
        _bad_input(talk)
        if version == 3:
            _storage(rec, hay, tmp_path)
            _cli(rec, hay, tmp_path)
    assert handler.records >= 1  # the capture works
    kinds = {name.split(" #")[0] for name in rec.scanner.secrets}
    assert {"DH private exponent", "DH shared secret", "AKE key c", "session key send_mac",
            "extra symmetric key", "SMP secret value", "SMP answer", "SMP question",
            "plaintext", "DSA private x", "random draw", "SMP exponentiation"} <= kinds  # fmt: skip
    reached = {
        "Account",
        "Conversation",
        "Session",
        "AKE",
        "DataKeys",
        "PairKeys",
        "DHKeyPair",
        "DSAPrivateKey",
        "SMP",
        "ReplyLimiter",
        "TLV",
        "MessageReceived",
        "SMPRequested",
        "SMPResult",
        "ExtraSymmetricKey",
        "SessionSecured",
        "UnreadableMessage",
        "MessageDiscarded",
        "SMPError",
        "RemoteProtocolError",
        "LocalProtocolError",
    }
    if version == 3:
        reached |= {"LibotrStore", "MemoryStore", "StorageError", "StoreTrustBook"}
    assert reached <= hay.types, reached - hay.types
    findings = rec.scanner.scan(hay.texts)
    assert findings == [], "\n".join(str(f) for f in findings[:20])


# --- the scanner itself can fail --------------------------------------------------------


_PLANTED: list[int | bytes | str] = [
    2**1535 + 0xDEADBEEF,
    bytes(range(16)),
    b"\x00\x01secret-key-bytes",
    "a plaintext to hide",
]


@pytest.mark.parametrize("secret", _PLANTED)
def test_scanner_finds_planted_secrets(
    secret: int | bytes | str, debug_logging: tuple[Haystack, LogCapture]
) -> None:
    """Each representation, planted in a log record, is found; unrelated
    text gives no finding."""
    hay, _ = debug_logging
    scanner = SecretScanner()
    scanner.add("planted", secret)
    assert (
        scanner.scan([("innocent", "nothing to see " * 100 + repr(scanner.secrets.keys()))]) == []
    )
    log = logging.getLogger("offrecord.planted")
    for label, form in representations(secret).items():
        hay.texts.clear()
        log.debug("value: %s!", form)
        found = scanner.scan(hay.texts)
        assert [f.form for f in found if f.form == label] == [label], (label, form)
    # spaced and colon-separated hex is found too
    raw = secret.encode() if isinstance(secret, str) else secret
    raw = raw if isinstance(raw, bytes) else raw.to_bytes((raw.bit_length() + 7) // 8, "big")
    hay.texts.clear()
    log.debug("%s", ":".join(f"{b:02x}" for b in raw))
    assert scanner.scan(hay.texts)


def test_scanner_finds_a_leaking_repr() -> None:
    """The object walk reaches a secret hidden a few levels down, if a class
    forgot ``repr=False``."""

    @dataclasses.dataclass
    class Leaky:
        secret: bytes

    Leaky.__module__ = "offrecord.fake"
    hay = Haystack()
    leaky = Leaky(b"very secret bytes!")
    hay.objects("test", {"outer": [(1, leaky)]})
    scanner = SecretScanner()
    scanner.add("planted", leaky.secret)
    assert scanner.scan(hay.texts)
