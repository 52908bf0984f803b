"""One local account: its conversations (one per peer), each routing messages
to a session per peer instance (spec "Instance Tags").

The account is the object applications hold.  It is sans-I/O: ``receive``
takes network text and returns events; ``data_to_send`` hands out the network
messages the engine wants sent, already fragmented to ``max_message_size``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from offrecord import events as ev
from offrecord.ake import AuthState
from offrecord.crypto.dsa import DSAPrivateKey
from offrecord.crypto.primitives import RandomSource, system_random
from offrecord.errors import LocalProtocolError, RemoteProtocolError
from offrecord.policy import Policy
from offrecord.session import MessageState, Outgoing, Session, message_bytes
from offrecord.wire.envelope import (
    ENCODED_PREFIX,
    FRAGMENT_PREFIXES,
    Incoming,
    Kind,
    classify,
    encoded_payload,
    query_message,
    tag_plaintext,
)
from offrecord.wire.fragment import (
    Reassembler,
    canonical_fields,
    fragment_message,
    is_fragment,
    min_max_size,
    parse_fragment,
)
from offrecord.wire.messages import (
    DataMessage,
    DHCommit,
    DHKey,
    EncodedMessage,
    decode_message,
)

if TYPE_CHECKING:
    from offrecord.storage.base import Store

__all__ = ["MIN_INSTANCE_TAG", "Account", "Conversation", "ReplyLimiter", "TrustBook"]

MIN_INSTANCE_TAG = 0x100
# The most held messages kept while waiting for encryption (REQUIRE_ENCRYPTION).
MAX_HELD = 100


def new_instance_tag(random_bytes: RandomSource) -> int:
    """A random instance tag >= 0x100 (spec "Instance Tags")."""
    while True:
        tag = int.from_bytes(random_bytes(4), "big")
        if tag >= MIN_INSTANCE_TAG:
            return tag


class TrustBook:
    """Known fingerprints per peer, with their trust ("" = not verified).

    The default book is in memory; the storage layer supplies one backed by
    libotr's ``otr.fingerprints`` file.
    """

    def __init__(self) -> None:
        self._book: dict[str, dict[bytes, str]] = {}

    def fingerprint_seen(self, peer: str, fingerprint: bytes) -> tuple[bool, bool]:
        known = self._book.setdefault(peer, {})
        new = fingerprint not in known
        if new:
            known[fingerprint] = ""
        return new, bool(known[fingerprint])

    def set_trust(self, peer: str, fingerprint: bytes, trust: str) -> None:
        self._book.setdefault(peer, {})[fingerprint] = trust

    def trust(self, peer: str, fingerprint: bytes) -> str:
        return self._book.get(peer, {}).get(fingerprint, "")

    def fingerprints(self, peer: str) -> dict[bytes, str]:
        return dict(self._book.get(peer, {}))


class ReplyLimiter:
    """Bounds automatic replies (error messages, queries after errors, AKE
    starts on queries) so two clients that disagree cannot flood each other.

    A bucket of ``burst`` replies, refilled by one every ``interval`` seconds
    when a clock is available; without a clock it refills when the user acts.
    """

    def __init__(
        self, clock: Callable[[], float | None], burst: int = 5, interval: float = 2.0
    ) -> None:
        self._clock = clock
        self._burst = burst
        self._interval = interval
        self._tokens = float(burst)
        self._last: float | None = None

    def allow(self) -> bool:
        now = self._clock()
        if now is not None:
            if self._last is not None:
                self._tokens = min(self._burst, self._tokens + (now - self._last) / self._interval)
            self._last = now
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        return False

    def user_acted(self) -> None:
        self._tokens = float(self._burst)


class _Offer:
    """Whitespace-tag offer state (libotr's ``otr_offer``)."""

    NOT = "not"
    SENT = "sent"
    REJECTED = "rejected"


@dataclass(slots=True)
class _Held:
    text: str = field(repr=False)


def _rank(session: Session) -> tuple[int, float]:
    """How good a destination ``session`` is for the user's messages."""
    state = session.msgstate
    preference = (
        2 if state is MessageState.ENCRYPTED else 1 if state is MessageState.FINISHED else 0
    )
    return preference, max(session.last_received or 0.0, session.last_sent or 0.0)


class Conversation:
    """Everything about one peer: a session per instance of theirs."""

    def __init__(self, account: Account, peer: str) -> None:
        self._account = account
        self.peer = peer
        # The master session (instance 0) speaks before we know their instance:
        # plaintext, queries, our D-H Commits, and all of version 2.
        self.limiter = ReplyLimiter(account.now)
        # Every session's wire messages, in the order they were made.
        self._outbox: list[Outgoing] = []
        # Orders AKE activity within this conversation: when the master's D-H
        # Commit went out, and when each session's own exchange last moved.
        self._ake_seq = 0
        self._master_commit_seq = 0
        self._session_ake_seq: dict[int, int] = {}
        self.master = self._new_session(0)
        self.instances: dict[int, Session] = {}
        self._offer = _Offer.NOT
        self._held: list[_Held] = []

    def __repr__(self) -> str:
        return f"Conversation(peer={self.peer!r}, state={self.state.value})"

    def _new_session(self, instance: int) -> Session:
        session = Session(self._account, self.peer, instance, self._outbox)
        session.may_auto_reply = self.limiter.allow
        return session

    # -- choosing a session -------------------------------------------------

    def sessions(self) -> list[Session]:
        return [self.master, *self.instances.values()]

    def best_session(self) -> Session:
        """Where an outgoing message goes: the most recently active encrypted
        session, else a finished one, else the master (libotr's "best")."""
        master, instances = self.master, self.instances
        if len(instances) == 1 and master.msgstate is not MessageState.ENCRYPTED:
            # The usual case, one instance of the peer: when it is encrypted
            # no ranking can prefer the master.
            (only,) = instances.values()
            if only.msgstate is MessageState.ENCRYPTED:
                return only
        best, best_rank = master, _rank(master)
        for session in self.instances.values():
            rank = _rank(session)
            if rank > best_rank:
                best, best_rank = session, rank
        return best

    @property
    def state(self) -> MessageState:
        return self.best_session().msgstate

    def session_for(self, instance: int | None) -> Session:
        if instance is None:
            return self.best_session()
        if instance == 0:
            return self.master
        try:
            return self.instances[instance]
        except KeyError:
            raise LocalProtocolError(f"no session with instance 0x{instance:08x}") from None

    # -- user actions --------------------------------------------------------

    def start(self) -> None:
        """Ask the peer to start (or refresh) OTR: send a query message."""
        self.limiter.user_acted()
        self._query()

    def _query(self) -> None:
        versions = self._account.policy.allowed_versions()
        if not versions:
            raise LocalProtocolError("the policy allows no OTR version")
        self.master.queue_plain(query_message(versions, self._account.name), self._account.now())

    def send(self, text: str, *, instance: int | None = None) -> list[ev.Event]:
        """Send what the user typed, as the message state and policy say."""
        now = self._account.now()
        session = self.best_session() if instance is None else self.session_for(instance)
        self.limiter.user_acted()
        if session.msgstate is MessageState.ENCRYPTED:
            session.send_data(text, now=now)
            return []
        policy = self._account.policy
        if session.msgstate is MessageState.FINISHED:
            return [ev.MessageNotSent("the peer ended the private conversation; end or restart it")]
        if not policy.allowed_versions():
            session.queue_plain(text, now)
            return []
        if policy & Policy.REQUIRE_ENCRYPTION:
            # Refused now, not when the held text is encrypted inside receive().
            message_bytes(text)
            if len(self._held) >= MAX_HELD:
                return [ev.MessageNotSent("too many messages are waiting for encryption")]
            self._held.append(_Held(text))
            self._query()
            return [ev.MessageHeld(len(self._held))]
        if policy & Policy.SEND_WHITESPACE_TAG and self._offer != _Offer.REJECTED:
            text = tag_plaintext(text, policy.allowed_versions())
            self._offer = _Offer.SENT
        session.queue_plain(text, now)
        return []

    def end(self) -> list[ev.Event]:
        """End the private conversation with every instance of the peer."""
        out: list[ev.Event] = []
        now = self._account.now()
        for session in self.sessions():
            out.extend(session.end(now))
        self._held.clear()
        return out

    # -- receiving -----------------------------------------------------------

    def receive(self, text: str) -> list[ev.Event]:
        if not self._account._versions:
            # OTR is off (policy NEVER): every message is shown as it came.
            return [ev.MessageReceived(text, False)] if text else []
        # The two shapes most traffic has, taken the way classify() and
        # _dispatch() would take them: a fragment, and an encoded message.
        if text.startswith(FRAGMENT_PREFIXES):
            return self._account._reassemble(self, text)
        if text.startswith(ENCODED_PREFIX):
            if self._account._reassemblers:
                self._account._note_unfragmented(self.peer, text)
            try:
                payload = encoded_payload(text)
            except RemoteProtocolError as exc:
                return [ev.MessageDiscarded(str(exc))]
            return self._receive_encoded(payload)
        if not is_fragment(text):
            # As libotr: any unfragmented message abandons a half-received v2 one.
            self._account._note_unfragmented(self.peer, text)
        try:
            incoming = classify(text)
        except RemoteProtocolError as exc:
            return [ev.MessageDiscarded(str(exc))]
        return self._dispatch(incoming)

    def _dispatch(self, incoming: Incoming) -> list[ev.Event]:
        policy = self._account.policy
        if incoming.kind is Kind.ENCODED:
            return self._receive_encoded(incoming.payload)
        if incoming.kind is Kind.QUERY:
            return self._start_ake_if_offered(incoming, always=True)
        if incoming.kind is Kind.ERROR:
            out: list[ev.Event] = [ev.ErrorReceived(incoming.text)]
            if policy & Policy.ERROR_START_AKE:
                if self.limiter.allow():
                    self._query()
                else:
                    out.append(ev.MessageDiscarded("automatic query suppressed (rate limit)"))
            return out
        if incoming.kind is Kind.FRAGMENT:
            return self._account._reassemble(self, incoming.text)
        if incoming.kind is Kind.UNKNOWN_OTR:
            return [ev.MessageDiscarded("unrecognised OTR message")]
        out = []
        if incoming.text:
            warn = self.state is not MessageState.PLAINTEXT or bool(
                policy & Policy.REQUIRE_ENCRYPTION
            )
            out.append(ev.MessageReceived(incoming.text, False, unencrypted_warning=warn))
        if incoming.kind is Kind.TAGGED_PLAINTEXT:
            # As libotr: a tag starts an AKE only when we are not already private.
            if policy & Policy.WHITESPACE_START_AKE and self.state is not MessageState.ENCRYPTED:
                out.extend(self._start_ake_if_offered(incoming, always=False))
        elif self._offer == _Offer.SENT:
            self._offer = _Offer.REJECTED
        return out

    def _start_ake_if_offered(self, incoming: Incoming, *, always: bool) -> list[ev.Event]:
        allowed = self._account.policy.allowed_versions() & incoming.offered()
        if not allowed:
            if always and incoming.versions:
                return [ev.UnsupportedVersion(incoming.versions)]
            return []
        if not self.limiter.allow():
            return [ev.MessageDiscarded("automatic AKE start suppressed (rate limit)")]
        self.master.start_ake(max(allowed), self._account.now())
        self._ake_seq += 1
        self._master_commit_seq = self._ake_seq
        return []

    def _receive_encoded(self, payload: bytes) -> list[ev.Event]:
        try:
            msg = decode_message(payload)
        except RemoteProtocolError as exc:
            return [ev.MessageDiscarded(str(exc))]
        if msg.version not in self._account._versions:
            return [ev.MessageDiscarded(f"OTR version {msg.version} is not allowed by policy")]
        session = self._route(msg)
        if isinstance(session, str):
            return [ev.MessageDiscarded(session)]
        if isinstance(msg, DataMessage):
            # Most traffic: a data message neither moves an AKE nor secures a
            # session, so none of the bookkeeping below applies.
            return session.receive_data(msg, self._account.now())
        was = session.msgstate
        auth_before = session.ake.state
        out = session.receive_encoded(msg, self._account.now())
        if session.ake.state is not auth_before:
            self._ake_seq += 1
            self._session_ake_seq[session.their_instance] = self._ake_seq
        if (
            session.msgstate is MessageState.ENCRYPTED
            and any(isinstance(e, ev.SessionSecured) for e in out)
        ):
            out.extend(self._flush_held(session))
            if was is not MessageState.ENCRYPTED and session is not self.master:
                self._offer = _Offer.NOT
        return out

    def _route(self, msg: EncodedMessage) -> Session | str:
        """The session a message belongs to, or why it is discarded."""
        if msg.version == 2:
            return self.master
        ours = self._account._instance_tag
        if msg.sender_tag < 0x100:
            return f"sender instance tag 0x{msg.sender_tag:08x} is invalid"
        if msg.receiver_tag != ours and not (msg.receiver_tag == 0 and isinstance(msg, DHCommit)):
            return f"message for another instance (0x{msg.receiver_tag:08x})"
        session = self.instances.get(msg.sender_tag)
        if session is None:
            if not isinstance(msg, DHCommit | DHKey):
                # Only an AKE opens a session with a new instance; libotr drops
                # the rest silently, and so garbage cannot use up the slots.
                return f"message from unknown instance 0x{msg.sender_tag:08x}"
            if len(self.instances) >= self._account.max_instances:
                return "too many instances of this peer"
            session = self._new_session(msg.sender_tag)
            self.instances[msg.sender_tag] = session
        if (
            not isinstance(msg, DataMessage)  # only AKE messages continue an AKE
            and self.master.ake.state is AuthState.AWAITING_DHKEY
            and self._adopts_master_ake(session, msg)
        ):
            session.ake = self.master.ake.copy_for(msg.sender_tag)
            self._session_ake_seq[msg.sender_tag] = self._master_commit_seq
        return session

    def _adopts_master_ake(self, session: Session, msg: EncodedMessage) -> bool:
        """Whether ``session`` should continue the master's pending AKE.

        Our D-H Commit goes out from the master before we know which instance
        of the peer will answer.  The instance that answers it — with a D-H
        Key, or with a colliding D-H Commit — continues from a copy of the
        master's AKE, provided our commit is newer than anything that
        instance's own AKE did: an instance whose exchange is more recent
        (it just answered the peer's commit, or completed an AKE with our
        commit already) resolves the message itself.  Copying there is what
        makes two clients that start at once overwrite each other's exchange
        forever, or resend a commit whose key was already revealed.

        A D-H Key goes to the newer commit even when the instance awaits a
        Signature for an older one, as in libotr: the peer resends the same
        D-H Key for every new commit it receives and then expects the Reveal
        Signature of the newest, so resending the old one never converges.
        """
        if self._session_ake_seq.get(session.their_instance, 0) >= self._master_commit_seq:
            return False
        if self.master.ake.version != msg.version:
            # A version 2 commit (after a v2-only offer) cannot continue in a
            # version 3 instance: the copy would refuse every v3 D-H Key.
            return False
        own = session.ake
        if isinstance(msg, DHCommit):
            return own.state is AuthState.NONE
        return isinstance(msg, DHKey) and own.state is not AuthState.AWAITING_DHKEY

    def _flush_held(self, session: Session) -> list[ev.Event]:
        if not self._held:
            return []
        held, self._held = self._held, []
        now = self._account.now()
        for item in held:
            session.send_data(item.text, now=now)
        return [ev.MessageResent(len(held), session.their_instance)]

    def outgoing(self) -> list[Outgoing]:
        """Take the wire messages every session has queued, oldest first."""
        outbox = self._outbox
        if not outbox:
            return []
        out = outbox.copy()
        outbox.clear()  # emptied in place: the sessions hold this list
        return out


class Account:
    """A local OTR account (one name on one IM protocol) and its conversations."""

    def __init__(
        self,
        name: str,
        protocol: str,
        private_key: DSAPrivateKey,
        *,
        policy: Policy = Policy.DEFAULT,
        instance_tag: int | None = None,
        random_bytes: RandomSource = system_random,
        clock: Callable[[], float] | None = None,
        max_message_size: int = 0,
        trust: TrustBook | None = None,
        max_instances: int = 16,
        padding: int = 0,
    ) -> None:
        self._name = name
        self.protocol = protocol
        self._key = private_key
        self._policy = policy
        # Asked for every message received: kept with the policy.
        self._versions = policy.allowed_versions()
        self._random = random_bytes
        self._clock = clock
        if instance_tag is None:
            instance_tag = new_instance_tag(random_bytes)
        if instance_tag < MIN_INSTANCE_TAG or instance_tag > 0xFFFFFFFF:
            raise LocalProtocolError("an instance tag must lie in [0x100, 0xFFFFFFFF]")
        self._instance_tag = instance_tag
        if max_message_size and max_message_size < min_max_size(3):
            raise LocalProtocolError(
                f"max_message_size must be 0 (unlimited) or at least {min_max_size(3)}"
            )
        self.max_message_size = max_message_size
        self.trust = trust if trust is not None else TrustBook()
        self.max_instances = max_instances
        if not 0 <= padding <= 0xFFFF:
            raise LocalProtocolError("padding must be between 0 (off) and 65535 bytes")
        self._padding = padding
        self._conversations: dict[str, Conversation] = {}
        self._order: list[str] = []
        self._reassemblers: dict[str, Reassembler] = {}

    def __repr__(self) -> str:
        return f"Account(name={self._name!r}, protocol={self.protocol!r})"

    @classmethod
    def from_store(
        cls,
        store: Store,
        name: str,
        protocol: str,
        *,
        random_bytes: RandomSource = system_random,
        **options: Any,
    ) -> Account:
        """An account whose key, instance tag and trust live in ``store``
        (e.g. ``LibotrStore("~/.purple")``).

        The key must exist (``offrecord keys generate``, or
        :func:`offrecord.keygen.ensure_private_key` in an application); the
        instance tag is made and saved on first use, as libotr does; new
        fingerprints and SMP results are written to the store.
        """
        # Imported here: the storage adapter builds on this module.
        from offrecord.storage.trust import StoreTrustBook

        key = store.get_private_key(name, protocol)
        if key is None:
            raise LocalProtocolError(f"no private key for {name} ({protocol}) in the store")
        tag = store.get_instance_tag(name, protocol)
        if tag is None:
            tag = new_instance_tag(random_bytes)
            store.save_instance_tag(name, protocol, tag)
        trust = StoreTrustBook(store, name, protocol)
        return cls(name, protocol, key, instance_tag=tag, random_bytes=random_bytes,
                   trust=trust, **options)  # fmt: skip

    # -- SessionOwner ------------------------------------------------------

    @property
    def name(self) -> str:
        return self._name

    @property
    def policy(self) -> Policy:
        return self._policy

    @policy.setter
    def policy(self, value: Policy) -> None:
        self._policy = value
        self._versions = value.allowed_versions()

    @property
    def private_key(self) -> DSAPrivateKey:
        return self._key

    @property
    def instance_tag(self) -> int:
        return self._instance_tag

    @property
    def random_bytes(self) -> RandomSource:
        return self._random

    @property
    def padding(self) -> int:
        return self._padding

    @property
    def fingerprint(self) -> bytes:
        return self._key.fingerprint()

    def fingerprint_seen(self, peer: str, fingerprint: bytes) -> tuple[bool, bool]:
        return self.trust.fingerprint_seen(peer, fingerprint)

    def set_trust(self, peer: str, fingerprint: bytes, trust: str) -> None:
        self.trust.set_trust(peer, fingerprint, trust)

    def now(self) -> float | None:
        return None if self._clock is None else self._clock()

    # -- conversations -----------------------------------------------------

    def conversation(self, peer: str) -> Conversation:
        conv = self._conversations.get(peer)
        if conv is None:
            conv = Conversation(self, peer)
            self._conversations[peer] = conv
            self._order.append(peer)
        return conv

    def receive(self, peer: str, text: str) -> list[ev.Event]:
        """Feed one network message from ``peer``; returns what happened."""
        conv = self._conversations.get(peer)
        if conv is None:
            conv = self.conversation(peer)
        return conv.receive(text)

    def _reassemble(self, conv: Conversation, text: str) -> list[ev.Event]:
        now = self._clock() if self._clock is not None else 0.0
        reassembler = self._reassemblers.get(conv.peer)
        if reassembler is not None:
            # Most fragments: the next piece of a message whose first piece
            # passed the checks below, with the same header (so the same
            # instance tags) and k one higher.
            try:
                complete = reassembler.add_next(text, now)
            except RemoteProtocolError as exc:  # the completed message nests a fragment
                return [ev.MessageDiscarded(str(exc))]
            if complete is not None:
                return self._reassembled(conv, complete) if complete else []
        fields = canonical_fields(text)  # the form fragments are sent in
        header = ""
        if fields is None:
            try:
                fragment = parse_fragment(text)
            except RemoteProtocolError as exc:
                return [ev.MessageDiscarded(str(exc))]
            fields = (fragment.version, fragment.sender_tag, fragment.receiver_tag,
                      fragment.k, fragment.n, fragment.piece)  # fmt: skip
        else:
            header = text[: -len(fields[5]) - 1]
        version, sender_tag, receiver_tag, k, n, piece = fields
        if version == 3:
            # As libotr: receiver tag 0 is for every instance (see Fragment.addressed_to).
            if receiver_tag != self._instance_tag and receiver_tag != 0:
                return [ev.MessageDiscarded("fragment for another instance")]
            if sender_tag < MIN_INSTANCE_TAG:
                return [ev.MessageDiscarded("fragment with an invalid sender instance tag")]
        if reassembler is None:
            reassembler = self._reassemblers[conv.peer] = Reassembler()
        try:
            complete = reassembler.add_piece(
                sender_tag if version == 3 else None, k, n, piece, now, header=header
            )
        except RemoteProtocolError as exc:
            return [ev.MessageDiscarded(str(exc))]
        if complete is None:
            return []
        return self._reassembled(conv, complete)

    def _reassembled(self, conv: Conversation, complete: str) -> list[ev.Event]:
        if complete.startswith(("?OTR,", "?OTR|")):
            return [ev.MessageDiscarded("a fragment inside a fragment")]
        return conv.receive(complete)

    def tick(self, now: float | None = None) -> None:
        """Run the timers: expire stale fragment reassemblies and stalled AKEs.

        Call it every few seconds (``now`` defaults to the account's clock).
        """
        if now is None:
            now = self.now()
        if now is None:
            raise LocalProtocolError("tick() needs a time: pass now or give the account a clock")
        for reassembler in self._reassemblers.values():
            reassembler.expire(now)
        for conv in self._conversations.values():
            for session in conv.sessions():
                session.tick(now)

    def _note_unfragmented(self, peer: str, text: str) -> None:
        reassembler = self._reassemblers.get(peer)
        if reassembler is not None:
            reassembler.note_unfragmented(text)

    def data_to_send(self) -> list[tuple[str, str]]:
        """(peer, text) pairs to put on the network, in order, fragmented."""
        out: list[tuple[str, str]] = []
        limit = self.max_message_size
        conversations = self._conversations
        for peer in self._order:
            for text, version, sender_tag, receiver_tag in conversations[peer].outgoing():
                if version and limit and len(text) > limit:
                    pieces = fragment_message(
                        text, limit, version=version, sender_tag=sender_tag,
                        receiver_tag=receiver_tag,
                    )  # fmt: skip
                    out += [(peer, piece) for piece in pieces]
                else:
                    out.append((peer, text))
        return out
