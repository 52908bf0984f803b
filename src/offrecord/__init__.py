"""offrecord — Off-the-Record Messaging (OTR v3, v2-compatible) for Python.

A sans-I/O engine: feed network text to :meth:`Account.receive`, act on the
returned events, and send what :meth:`Account.data_to_send` hands out.
"""

from offrecord import events
from offrecord.account import Account, Conversation, TrustBook
from offrecord.errors import LocalProtocolError, OTRError, RemoteProtocolError, StorageError
from offrecord.policy import Policy
from offrecord.session import MessageState, Session

__all__ = [
    "Account",
    "Conversation",
    "LocalProtocolError",
    "MessageState",
    "OTRError",
    "Policy",
    "RemoteProtocolError",
    "Session",
    "StorageError",
    "TrustBook",
    "events",
]
__version__ = "0.1.0"
