"""Long-term key generation that does not block an asyncio application.

:func:`~offrecord.crypto.dsa.generate_private_key` is pure CPU work (a
1024/160-bit DSA domain takes a fraction of a second to a few seconds,
depending on the machine and on luck).  Called from a coroutine it would stall
the event loop, so these helpers run it — and the store's file I/O — in an
executor (the loop's default thread pool unless one is given)::

    key = await generate_private_key_async()
    key, created = await ensure_private_key(store, "alice@example.org", "prpl-jabber")

gmpy2 releases the GIL only partly, so other Python threads slow down while a
key is generated, but the event loop keeps running.  Cancelling the awaiting
task does not stop a generation already under way in the executor; its
result is simply dropped (nothing is saved).
"""

from __future__ import annotations

import asyncio
import functools
from concurrent.futures import Executor

from offrecord.crypto.dsa import DSAPrivateKey, generate_private_key
from offrecord.crypto.primitives import RandomSource, system_random
from offrecord.storage.base import Store, check_name

__all__ = ["ensure_private_key", "generate_private_key_async"]


async def generate_private_key_async(
    random_bytes: RandomSource = system_random, *, executor: Executor | None = None
) -> DSAPrivateKey:
    """A fresh DSA-1024/160 key, generated in ``executor`` (default: the
    running loop's default executor).  ``random_bytes`` is called from that
    thread only."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(executor, generate_private_key, random_bytes)


async def ensure_private_key(
    store: Store,
    account: str,
    protocol: str,
    *,
    random_bytes: RandomSource = system_random,
    executor: Executor | None = None,
) -> tuple[DSAPrivateKey, bool]:
    """The account's key from ``store``, generating and saving one if it has none.

    Returns ``(key, created)``.  Store reads and writes run in the executor
    too.  If another writer saved a key for the account while ours was being
    generated, that key is returned and ours is discarded (the store is
    checked again just before saving; two processes racing within that
    window can still both save, the later one winning).  Storage problems
    raise :class:`~offrecord.errors.StorageError`; nothing is written over a
    malformed file.
    """
    check_name(account, "account")
    check_name(protocol, "protocol")
    loop = asyncio.get_running_loop()
    get = functools.partial(store.get_private_key, account, protocol)
    existing = await loop.run_in_executor(executor, get)
    if existing is not None:
        return existing, False
    key = await generate_private_key_async(random_bytes, executor=executor)

    def save_unless_present() -> tuple[DSAPrivateKey, bool]:
        current = store.get_private_key(account, protocol)
        if current is not None:
            return current, False
        store.save_private_key(account, protocol, key)
        return key, True

    return await loop.run_in_executor(executor, save_unless_present)
