"""The authenticated key exchange (spec "Authenticated Key Exchange" and the
authentication-state transitions), as a table.

:data:`TRANSITIONS` maps (authentication state, incoming message type) to the
handler that runs; a pair that is not in the table is ignored, as the spec
says.  Handlers compute on local values and change the AKE's state only once
everything they received has verified: a forged or corrupted message never
disturbs an exchange in progress.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum

from offrecord.crypto import dh
from offrecord.crypto.dsa import (
    SIGNATURE_LENGTH,
    DSAPrivateKey,
    DSAPublicKey,
    fingerprint_of_encoding,
)
from offrecord.crypto.primitives import (
    RandomSource,
    aes_ctr,
    hmac_sha256,
    hmac_sha256_160,
    macs_equal,
    sha256,
)
from offrecord.errors import RemoteProtocolError
from offrecord.wire.codec import Reader, encode_data, encode_int, encode_mpi
from offrecord.wire.messages import (
    DHCommit,
    DHKey,
    EncodedMessage,
    MessageType,
    RevealSignature,
    Signature,
)

__all__ = ["AKE", "TRANSITIONS", "AKEComplete", "AKEStep", "AuthState", "derive_ake_keys"]

# The key id of the DH key pair used in the AKE; libotr always uses 1, so the
# first data-message key pair is 2.
AKE_KEYID = 1
_ZERO_CTR = b"\x00" * 8


class AuthState(Enum):
    NONE = "none"
    AWAITING_DHKEY = "awaiting D-H key"
    AWAITING_REVEALSIG = "awaiting reveal signature"
    AWAITING_SIG = "awaiting signature"


@dataclass(frozen=True, slots=True)
class AKEKeys:
    """The seven values derived from the AKE's shared secret (spec "Computing
    AES keys, MAC keys, and the secure session id")."""

    ssid: bytes
    c: bytes = field(repr=False)
    c_prime: bytes = field(repr=False)
    m1: bytes = field(repr=False)
    m2: bytes = field(repr=False)
    m1_prime: bytes = field(repr=False)
    m2_prime: bytes = field(repr=False)


def derive_ake_keys(shared: int) -> AKEKeys:
    secbytes = encode_mpi(shared)

    def h2(b: int) -> bytes:
        return sha256(bytes((b,)) + secbytes)

    cc = h2(0x01)
    return AKEKeys(
        ssid=h2(0x00)[:8],
        c=cc[:16],
        c_prime=cc[16:],
        m1=h2(0x02),
        m2=h2(0x03),
        m1_prime=h2(0x04),
        m2_prime=h2(0x05),
    )


@dataclass(frozen=True, slots=True)
class AKEComplete:
    """What a successful AKE hands to data-message key management."""

    version: int
    their_public_key: DSAPublicKey
    # libotr fingerprints the key bytes exactly as received (which differ from
    # a re-encoding if the peer padded an MPI with zero bytes).
    their_fingerprint: bytes
    their_keyid: int
    their_dh: int
    our_keyid: int
    our_dh: dh.DHKeyPair
    ssid: bytes
    # The side that sent the Reveal Signature message shows the first half of
    # the ssid in bold (spec).
    sent_reveal_signature: bool
    their_instance: int


@dataclass(frozen=True, slots=True)
class AKEStep:
    """The result of feeding one message to the AKE."""

    reply: EncodedMessage | None = None
    complete: AKEComplete | None = None
    discarded: str | None = None


@dataclass(slots=True)
class _Progress:
    """Values held between AKE messages.  Never shown."""

    version: int = 3
    their_instance: int = 0
    our_dh: dh.DHKeyPair | None = None
    r: bytes = b""
    gx_mpi: bytes = b""
    their_encrypted_gx: bytes = b""
    their_hashed_gx: bytes = b""
    their_gy: int = 0
    last_sent: EncodedMessage | None = None
    keys: AKEKeys | None = None

    def __repr__(self) -> str:
        return f"_Progress(version={self.version}, their_instance={self.their_instance})"


class AKE:
    """One side's AKE state for one peer instance."""

    def __init__(
        self,
        private_key: DSAPrivateKey,
        random_bytes: RandomSource,
        our_instance: int,
    ) -> None:
        self._key = private_key
        self._random = random_bytes
        self._our_instance = our_instance
        self.state = AuthState.NONE
        self._p = _Progress()

    def __repr__(self) -> str:
        return f"AKE(state={self.state.name})"

    @property
    def version(self) -> int:
        return self._p.version

    # -- starting ---------------------------------------------------------

    def start(self, version: int, their_instance: int = 0) -> DHCommit:
        """Begin an AKE: a fresh D-H Commit; state AWAITING_DHKEY."""
        progress = _Progress(version=version, their_instance=their_instance)
        commit = self._make_commit(progress)
        self._p = progress
        self.state = AuthState.AWAITING_DHKEY
        return commit

    def _make_commit(self, progress: _Progress) -> DHCommit:
        progress.our_dh = dh.generate_keypair(self._random(dh.DH_EXPONENT_BITS // 8))
        progress.r = self._random(16)
        progress.gx_mpi = encode_mpi(progress.our_dh.public)
        commit = DHCommit(
            progress.version,
            self._our_instance,
            progress.their_instance,
            aes_ctr(progress.r, _ZERO_CTR, progress.gx_mpi),
            sha256(progress.gx_mpi),
        )
        progress.last_sent = commit
        return commit

    def reset(self) -> None:
        self.state = AuthState.NONE
        self._p = _Progress()

    def copy_for(self, their_instance: int) -> AKE:
        """A copy of this AKE for a newly seen peer instance.

        Our D-H Commit goes out before we know which instance of the peer will
        answer; the instance that answers continues the exchange from a copy,
        so the original can still serve another instance.
        """
        twin = AKE(self._key, self._random, self._our_instance)
        twin.state = self.state
        p = self._p
        twin._p = _Progress(
            version=p.version, their_instance=their_instance, our_dh=p.our_dh, r=p.r,
            gx_mpi=p.gx_mpi, their_encrypted_gx=p.their_encrypted_gx,
            their_hashed_gx=p.their_hashed_gx, their_gy=p.their_gy, last_sent=p.last_sent,
            keys=p.keys,
        )  # fmt: skip
        return twin

    # -- receiving --------------------------------------------------------

    def receive(self, msg: EncodedMessage) -> AKEStep:
        handler = TRANSITIONS.get((self.state, MessageType(msg.type)))
        if handler is None:
            return AKEStep(
                discarded=f"{MessageType(msg.type).name} ignored in state {self.state.name}"
            )
        try:
            return handler(self, msg)
        except RemoteProtocolError as exc:
            return AKEStep(discarded=str(exc))

    def _reply_dhkey(self, msg: EncodedMessage) -> AKEStep:
        """Any state -> AWAITING_REVEALSIG with a new D-H key (spec: NONE, AWAITING_SIG,
        and AWAITING_DHKEY when the incoming commit wins)."""
        assert isinstance(msg, DHCommit)
        progress = _Progress(version=msg.version, their_instance=msg.sender_tag)
        progress.our_dh = dh.generate_keypair(self._random(dh.DH_EXPONENT_BITS // 8))
        progress.their_encrypted_gx = msg.encrypted_gx
        progress.their_hashed_gx = msg.hashed_gx
        reply = DHKey(msg.version, self._our_instance, msg.sender_tag, progress.our_dh.public)
        progress.last_sent = reply
        self._p = progress
        self.state = AuthState.AWAITING_REVEALSIG
        return AKEStep(reply=reply)

    def _commit_while_awaiting_dhkey(self, msg: EncodedMessage) -> AKEStep:
        assert isinstance(msg, DHCommit)
        ours = int.from_bytes(sha256(self._p.gx_mpi), "big")
        theirs = int.from_bytes(msg.hashed_gx, "big")
        if ours > theirs:
            # We win the collision: keep ours and send it again.
            return AKEStep(reply=self._p.last_sent)
        return self._reply_dhkey(msg)

    def _commit_while_awaiting_revealsig(self, msg: EncodedMessage) -> AKEStep:
        assert isinstance(msg, DHCommit)
        # Keep our D-H key, adopt the new commit, send the same D-H Key again.
        self._p.their_encrypted_gx = msg.encrypted_gx
        self._p.their_hashed_gx = msg.hashed_gx
        self._p.their_instance = msg.sender_tag
        self._p.version = msg.version
        assert self._p.our_dh is not None
        reply = DHKey(msg.version, self._our_instance, msg.sender_tag, self._p.our_dh.public)
        self._p.last_sent = reply
        return AKEStep(reply=reply)

    def _dhkey_while_awaiting_dhkey(self, msg: EncodedMessage) -> AKEStep:
        assert isinstance(msg, DHKey)
        progress = self._p
        assert progress.our_dh is not None
        if msg.version != progress.version:
            return AKEStep(discarded="D-H Key of another protocol version than our commit")
        keys = derive_ake_keys(dh.shared_secret(progress.our_dh, msg.gy))
        encrypted, mac = self._signed_part(keys.m1, keys.c, keys.m2, progress.our_dh.public, msg.gy)
        reply = RevealSignature(
            msg.version, self._our_instance, msg.sender_tag, progress.r, encrypted, mac
        )
        progress.their_gy = msg.gy
        progress.their_instance = msg.sender_tag
        progress.keys = keys
        progress.last_sent = reply
        self.state = AuthState.AWAITING_SIG
        return AKEStep(reply=reply)

    def _dhkey_while_awaiting_sig(self, msg: EncodedMessage) -> AKEStep:
        assert isinstance(msg, DHKey)
        if msg.gy == self._p.their_gy and msg.sender_tag == self._p.their_instance:
            return AKEStep(reply=self._p.last_sent)
        return AKEStep(discarded="a different D-H Key while awaiting the signature")

    def _revealsig_while_awaiting_revealsig(self, msg: EncodedMessage) -> AKEStep:
        assert isinstance(msg, RevealSignature)
        progress = self._p
        assert progress.our_dh is not None
        gx_mpi = aes_ctr(msg.revealed_key, _ZERO_CTR, progress.their_encrypted_gx)
        if not macs_equal(sha256(gx_mpi), progress.their_hashed_gx):
            raise RemoteProtocolError("Reveal Signature: g^x does not match its hash")
        reader = Reader(gx_mpi, "revealed g^x")
        gx = dh.check_element(reader.mpi("g^x"), "g^x")
        reader.end()
        keys = derive_ake_keys(dh.shared_secret(progress.our_dh, gx))
        their_key, their_fp, their_keyid = self._verify_signed_part(
            msg.encrypted_signature, msg.mac, keys.m1, keys.c, keys.m2, gx, progress.our_dh.public
        )
        encrypted, mac = self._signed_part(
            keys.m1_prime, keys.c_prime, keys.m2_prime, progress.our_dh.public, gx
        )
        reply = Signature(msg.version, self._our_instance, msg.sender_tag, encrypted, mac)
        complete = AKEComplete(
            version=msg.version,
            their_public_key=their_key,
            their_fingerprint=their_fp,
            their_keyid=their_keyid,
            their_dh=gx,
            our_keyid=AKE_KEYID,
            our_dh=progress.our_dh,
            ssid=keys.ssid,
            sent_reveal_signature=False,
            their_instance=msg.sender_tag,
        )
        self.reset()
        return AKEStep(reply=reply, complete=complete)

    def _sig_while_awaiting_sig(self, msg: EncodedMessage) -> AKEStep:
        assert isinstance(msg, Signature)
        progress = self._p
        assert progress.our_dh is not None and progress.keys is not None
        keys = progress.keys
        their_key, their_fp, their_keyid = self._verify_signed_part(
            msg.encrypted_signature,
            msg.mac,
            keys.m1_prime,
            keys.c_prime,
            keys.m2_prime,
            progress.their_gy,
            progress.our_dh.public,
        )
        complete = AKEComplete(
            version=progress.version,
            their_public_key=their_key,
            their_fingerprint=their_fp,
            their_keyid=their_keyid,
            their_dh=progress.their_gy,
            our_keyid=AKE_KEYID,
            our_dh=progress.our_dh,
            ssid=keys.ssid,
            sent_reveal_signature=True,
            their_instance=msg.sender_tag,
        )
        self.reset()
        return AKEStep(complete=complete)

    # -- the signed part of Reveal Signature / Signature -----------------------

    def _signed_part(
        self, m1: bytes, c: bytes, m2: bytes, our_dh_public: int, their_dh_public: int
    ) -> tuple[bytes, bytes]:
        """X = pub || keyid || sig(M), encrypted with c and MACed with m2."""
        pub = self._key.public.encode()
        keyid = encode_int(AKE_KEYID)
        digest = hmac_sha256(
            m1, encode_mpi(our_dh_public) + encode_mpi(their_dh_public) + pub + keyid
        )
        x = pub + keyid + self._key.sign(digest)
        encrypted = aes_ctr(c, _ZERO_CTR, x)
        return encrypted, hmac_sha256_160(m2, encode_data(encrypted))

    @staticmethod
    def _verify_signed_part(
        encrypted: bytes,
        mac: bytes,
        m1: bytes,
        c: bytes,
        m2: bytes,
        their_dh_public: int,
        our_dh_public: int,
    ) -> tuple[DSAPublicKey, bytes, int]:
        if not macs_equal(hmac_sha256_160(m2, encode_data(encrypted)), mac):
            raise RemoteProtocolError("AKE signature MAC does not verify")
        reader = Reader(aes_ctr(c, _ZERO_CTR, encrypted), "AKE signature")
        start = reader.position
        their_key = DSAPublicKey.decode(reader)
        pub_bytes = reader.consumed()[start:]
        keyid = reader.int32("key id")
        if keyid == 0:
            raise RemoteProtocolError("AKE key id is 0")
        signature = reader.raw(SIGNATURE_LENGTH, "signature")
        reader.end()
        digest = hmac_sha256(
            m1,
            encode_mpi(their_dh_public) + encode_mpi(our_dh_public) + pub_bytes + encode_int(keyid),
        )
        if not their_key.verify(digest, signature):
            raise RemoteProtocolError("AKE signature does not verify")
        return their_key, fingerprint_of_encoding(pub_bytes), keyid


_Handler = Callable[[AKE, EncodedMessage], AKEStep]

# The authentication-state table.  Every (state, message) pair absent here is
# ignored (the spec's "Ignore the message").
TRANSITIONS: dict[tuple[AuthState, MessageType], _Handler] = {
    (AuthState.NONE, MessageType.DH_COMMIT): AKE._reply_dhkey,
    (AuthState.AWAITING_DHKEY, MessageType.DH_COMMIT): AKE._commit_while_awaiting_dhkey,
    (AuthState.AWAITING_REVEALSIG, MessageType.DH_COMMIT): AKE._commit_while_awaiting_revealsig,
    (AuthState.AWAITING_SIG, MessageType.DH_COMMIT): AKE._reply_dhkey,
    (AuthState.AWAITING_DHKEY, MessageType.DH_KEY): AKE._dhkey_while_awaiting_dhkey,
    (AuthState.AWAITING_SIG, MessageType.DH_KEY): AKE._dhkey_while_awaiting_sig,
    (AuthState.AWAITING_REVEALSIG, MessageType.REVEAL_SIGNATURE): (
        AKE._revealsig_while_awaiting_revealsig
    ),
    (AuthState.AWAITING_SIG, MessageType.SIGNATURE): AKE._sig_while_awaiting_sig,
}
