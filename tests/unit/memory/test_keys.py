"""The key store: roles and scopes checked at creation, keys verified by salted hash, revocation."""

from __future__ import annotations

from pathlib import Path

import pytest

from zhiwen.errors import ZhiwenError
from zhiwen.memory.keys import KeyStore, parse_key, verify


@pytest.fixture
def store(tmp_path: Path) -> KeyStore:
    return KeyStore(tmp_path / "keys.sqlite")


def test_a_key_verifies_and_carries_its_role_and_scope(store: KeyStore) -> None:
    record, key = store.create("chat", ["产品手册", "bank", "bank"], " web ")
    assert record.kbs == ("产品手册", "bank") and record.label == "web"
    found = verify(store.secrets_snapshot(), key)
    assert found is not None and found.id == record.id and found.role == "chat"
    assert found.may_use("bank") and not found.may_use("treasury")
    admin, admin_key = store.create("admin")
    assert verify(store.secrets_snapshot(), admin_key) == admin and admin.may_use("anything")


def test_wrong_keys_do_not_verify(store: KeyStore) -> None:
    record, key = store.create("chat", ["bank"])
    snapshot = store.secrets_snapshot()
    other = "zw_" + record.id + "_" + "x" * 43
    for token in (other, key + "x", key[:-1], f"zw_{'0' * 12}_{key.split('_', 2)[2]}", "", "zw_", "bearer"):
        assert verify(snapshot, token) is None, token
    assert parse_key("zw_abc_def") is None, "ids are 12 characters"


def test_revoked_keys_leave_the_snapshot_and_cannot_be_revoked_twice(store: KeyStore) -> None:
    record, key = store.create("chat", ["bank"])
    revoked = store.revoke(key)  # by the whole key, too
    assert revoked.revoked is not None
    assert verify(store.secrets_snapshot(), key) is None
    assert [k.id for k in store.list()] == [record.id], "a revoked key is still listed"
    with pytest.raises(ZhiwenError, match="already revoked"):
        store.revoke(record.id)
    with pytest.raises(ZhiwenError, match="no key with id 'nope'"):
        store.revoke("nope")


def test_a_whole_key_with_a_wrong_secret_revokes_nothing(store: KeyStore) -> None:
    record, key = store.create("chat", ["bank"])
    typo = key[:-1] + ("A" if key[-1] != "A" else "B")
    with pytest.raises(ZhiwenError, match=f"that is not the key {record.id}"):
        store.revoke(typo)
    assert verify(store.secrets_snapshot(), key) is not None, "the key was revoked by a wrong secret"
    assert store.revoke(record.id).revoked is not None  # by id it goes


@pytest.mark.parametrize(
    ("role", "kbs", "message"),
    [
        ("chat", [], "needs the knowledge bases"),
        ("chat", ["  "], "needs the knowledge bases"),
        ("admin", ["bank"], "leave out --kb"),
        ("root", [], "role must be one of admin, chat"),
    ],
)
def test_bad_keys_are_refused(store: KeyStore, role: str, kbs: list[str], message: str) -> None:
    with pytest.raises(ZhiwenError, match=message):
        store.create(role, kbs)
    assert store.list() == []


def test_the_secret_is_not_stored(store: KeyStore, tmp_path: Path) -> None:
    _, key = store.create("chat", ["bank"])
    store.close()
    assert key.split("_", 2)[2].encode() not in (tmp_path / "keys.sqlite").read_bytes()
