"""Who a request is: the admin keys of ``ZHIWEN_API_KEYS`` plus the stored keys, checked in memory.

The stored keys are read into a snapshot at start and again every ``ZHIWEN_KEYS_REFRESH_SECONDS`` (in a worker
thread), so a ``zhiwen keys revoke`` reaches a running server within that time, and no request waits on the
key database.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
from dataclasses import dataclass, field

from zhiwen.memory.keys import ApiKey, KeyStore, verify

__all__ = ["OPEN", "KeyRing", "Principal"]

log = logging.getLogger("zhiwen.server")


@dataclass(frozen=True)
class Principal:
    """The caller: its role, the knowledge bases a chat key may use, and an id for limits and threads."""

    id: str
    role: str
    kbs: frozenset[str] = field(default_factory=frozenset)
    owner: str = ""
    """Whose threads it sees: a digest of its key; empty on an open server (no keys at all)."""

    @property
    def admin(self) -> bool:
        return self.role == "admin"

    def may_use(self, kb: str) -> bool:
        return self.admin or kb in self.kbs


OPEN = Principal(id="open", role="admin")
"""Every request on a server without keys (``ZHIWEN_ALLOW_OPEN``)."""


def _owner(token: bytes) -> str:
    """Stable when keys are added, reordered or revoked: a digest of the key itself."""
    return "k" + hashlib.sha256(token).hexdigest()[:16]


class KeyRing:
    """The keys a server accepts; ``refresh()`` re-reads the stored ones."""

    def __init__(self, admin_keys: list[str], store: KeyStore, allow_open: bool = False) -> None:
        self.admin_keys = [k.encode() for k in admin_keys]
        self.store = store
        self.allow_open = allow_open
        self.snapshot: dict[str, tuple[bytes, bytes, ApiKey]] = {}
        self.refresh()

    @property
    def guarded(self) -> bool:
        """Every request must bring a key: unless open serving was allowed and no key exists. (Without
        ``allow_open``, revoking the last key must not open the server: it then refuses every request.)"""
        return not self.allow_open or bool(self.admin_keys or self.snapshot)

    @property
    def has_keys(self) -> bool:
        return bool(self.admin_keys or self.snapshot)

    def refresh(self) -> None:
        self.snapshot = self.store.secrets_snapshot()

    async def refresh_forever(self, every: float) -> None:
        """Re-read the stored keys every ``every`` seconds (a failed read keeps the last snapshot)."""
        while True:
            await asyncio.sleep(every)
            try:
                await asyncio.to_thread(self.refresh)
            except Exception as exc:
                log.warning("could not re-read the API keys, keeping the last ones: %r", exc)

    def identify(self, token: bytes) -> Principal | None:
        """The principal ``token`` proves, or None; the admin keys are compared in constant time, all of them."""
        if not self.guarded:
            return OPEN
        match = None
        for i, key in enumerate(self.admin_keys):
            if hmac.compare_digest(token, key):  # no early exit: every key is compared
                match = Principal(id=f"env{i}", role="admin", owner=_owner(token))
        if match is not None:
            return match
        stored = verify(self.snapshot, token.decode("utf-8", "replace"))
        if stored is None:
            return None
        return Principal(id=stored.id, role=stored.role, kbs=frozenset(stored.kbs), owner=_owner(token))
