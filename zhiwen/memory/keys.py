"""API keys with roles and knowledge-base scopes, stored as salted hashes (SQLite in ``ZHIWEN_HOME``).

Stored in ``ZHIWEN_HOME/keys.sqlite``, or in PostgreSQL (table ``zhiwen_keys``) when ``ZHIWEN_DATABASE_URL`` is
set, so that every replica of a server reads the same keys. A key reads ``zw_<id>_<secret>``: the id finds its row, the secret is checked against the row's salted
SHA-256 in constant time. The secret is 32 random bytes, so a fast hash is enough (a slow KDF protects guessable
passwords, not random tokens); the key itself is shown once, when it is made, and never stored.

Roles: ``admin`` may do everything; ``chat`` may chat, search, list models and keep its own threads, on the
knowledge bases it is scoped to. ``ZHIWEN_API_KEYS`` (the environment) are admin keys.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from zhiwen.errors import ZhiwenError
from zhiwen.memory.small_store import Sql, open_sql
from zhiwen.settings import Settings, redact_url

__all__ = ["ROLES", "ApiKey", "KeyStore", "Role", "keys_path", "open_key_store", "parse_key", "verify"]

Role = Literal["admin", "chat"]
ROLES: tuple[Role, ...] = ("admin", "chat")
_PREFIX = "zw_"


@dataclass(frozen=True)
class ApiKey:
    """A stored key's record (never its secret)."""

    id: str
    role: Role
    kbs: tuple[str, ...]
    label: str
    created: float
    revoked: float | None = None

    def may_use(self, kb: str) -> bool:
        return self.role == "admin" or kb in self.kbs


def keys_path(home: Path) -> Path:
    """Where an installation keeps its keys without a shared database: the CLI writes them, every server on
    that home reads them."""
    return home / "keys.sqlite"


def open_key_store(settings: Settings) -> KeyStore:
    """The installation's keys: in the shared database when ``ZHIWEN_DATABASE_URL`` is set, else on disk."""
    return KeyStore(keys_path(settings.home), settings.database_url)


def _digest(salt: bytes, secret: str) -> bytes:
    return hashlib.sha256(salt + secret.encode()).digest()


def parse_key(token: str) -> tuple[str, str] | None:
    """(id, secret) of a token shaped like a stored key, else None."""
    if not token.startswith(_PREFIX):
        return None
    key_id, sep, secret = token[len(_PREFIX) :].partition("_")
    if not sep or len(key_id) != 12 or not secret:
        return None
    return key_id, secret


_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS keys (id TEXT PRIMARY KEY, salt BLOB NOT NULL, hash BLOB NOT NULL, "
    "role TEXT NOT NULL, kbs TEXT NOT NULL, label TEXT NOT NULL, created DOUBLE PRECISION NOT NULL, "
    "revoked DOUBLE PRECISION)"
)


class KeyStore:
    """The keys of one zhiwen installation: SQLite at ``path``, or PostgreSQL when ``database_url`` is set."""

    def __init__(self, path: Path, database_url: str | None = None) -> None:
        self._sql: Sql = open_sql(path, database_url, _SCHEMA, ("keys",))
        self.where = redact_url(database_url) if database_url else str(path)

    def close(self) -> None:
        self._sql.close()

    def create(self, role: str, kbs: Iterable[str] = (), label: str = "") -> tuple[ApiKey, str]:
        """A new key: (its record, the key to hand out). Chat keys need at least one knowledge base."""
        if role not in ROLES:
            raise ZhiwenError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
        scope = tuple(dict.fromkeys(k.strip() for k in kbs if k.strip()))
        if role == "chat" and not scope:
            raise ZhiwenError("a chat key needs the knowledge bases it may use: --kb NAME (repeatable)")
        if role == "admin" and scope:
            raise ZhiwenError("admin keys reach every knowledge base: leave out --kb")
        key_id, secret, salt = secrets.token_hex(6), secrets.token_urlsafe(32), secrets.token_bytes(16)
        record = ApiKey(key_id, role, scope, label.strip(), time.time())
        self._sql.rows(
            "INSERT INTO keys VALUES (?, ?, ?, ?, ?, ?, ?, NULL)",
            (key_id, salt, _digest(salt, secret), role, json.dumps(scope), record.label, record.created),
        )
        return record, f"{_PREFIX}{key_id}_{secret}"

    def list(self) -> list[ApiKey]:
        """Every key, revoked ones included, oldest first."""
        rows = self._sql.rows("SELECT id, role, kbs, label, created, revoked FROM keys ORDER BY created")
        return [ApiKey(r[0], r[1], tuple(json.loads(r[2])), r[3], r[4], r[5]) for r in rows]

    def revoke(self, key_id: str) -> ApiKey:
        """Revoke a key by id (or by the whole key); revoking twice is an error naming when it was done."""
        parsed = parse_key(key_id)
        key_id = parsed[0] if parsed else key_id.strip()
        found = self._sql.rows("SELECT revoked, salt, hash FROM keys WHERE id = ?", (key_id,))
        if not found:
            raise ZhiwenError(f"no key with id {key_id!r} (see `zhiwen keys list`)")
        if parsed and not hmac.compare_digest(_digest(found[0][1], parsed[1]), found[0][2]):
            # A whole key is given to say which key: one whose secret is wrong is a typo, not that key.
            raise ZhiwenError(
                f"that is not the key {key_id} (its secret differs); to revoke it by id: {key_id}"
            )
        if found[0][0] is not None:
            when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(found[0][0]))
            raise ZhiwenError(f"key {key_id} was already revoked at {when}")
        self._sql.rows("UPDATE keys SET revoked = ? WHERE id = ? AND revoked IS NULL", (time.time(), key_id))
        return next(k for k in self.list() if k.id == key_id)

    def secrets_snapshot(self) -> dict[str, tuple[bytes, bytes, ApiKey]]:
        """id -> (salt, hash, record) of every key not revoked: what a server checks tokens against."""
        rows = self._sql.rows(
            "SELECT id, salt, hash, role, kbs, label, created FROM keys WHERE revoked IS NULL"
        )
        return {r[0]: (r[1], r[2], ApiKey(r[0], r[3], tuple(json.loads(r[4])), r[5], r[6])) for r in rows}


def verify(snapshot: dict[str, tuple[bytes, bytes, ApiKey]], token: str) -> ApiKey | None:
    """The key ``token`` is, if it is a valid key of ``snapshot`` (constant-time comparison)."""
    parsed = parse_key(token)
    if parsed is None:
        return None
    entry = snapshot.get(parsed[0])
    if entry is None:
        return None
    salt, stored, record = entry
    return record if hmac.compare_digest(_digest(salt, parsed[1]), stored) else None
