"""``zhiwen keys``: create, list and revoke the server's API keys (stored salted-hashed in ZHIWEN_HOME)."""

from __future__ import annotations

import time
from typing import Annotated

import typer
from rich.table import Table

from zhiwen.consoles import console
from zhiwen.errors import ZhiwenError
from zhiwen.memory.kb import check_new_name, ensure_kb_exists
from zhiwen.memory.keys import ROLES, KeyStore, open_key_store
from zhiwen.settings import get_settings

__all__ = ["keys_app"]

keys_app = typer.Typer(
    help="API keys for `zhiwen serve`: admin (everything) or chat (chat, search, models and its own threads "
    "on the knowledge bases it is scoped to). A revocation reaches running servers within seconds.",
    no_args_is_help=True,
)
out = console()


def _store() -> KeyStore:
    return open_key_store(get_settings())


@keys_app.command("create")
def create(
    role: Annotated[str, typer.Option("--role", help=f"One of: {', '.join(ROLES)}.")],
    kb: Annotated[
        list[str] | None,
        typer.Option("--kb", help="A knowledge base a chat key may use (repeatable; required for chat)."),
    ] = None,
    label: Annotated[str, typer.Option("--label", help="What the key is for (shown by `keys list`).")] = "",
) -> None:
    """Make a key; it is printed once, as the last line, and stored only as a salted hash."""
    for name in kb or []:
        _known_or_valid(name)
    store = _store()
    try:
        record, key = store.create(role, kb or [], label)
    finally:
        store.close()
    scope = ", ".join(record.kbs) if record.kbs else "every knowledge base"
    typer.echo(f"created {record.role} key {record.id} ({scope}); it is shown only now:", err=True)
    typer.echo(key)


def _known_or_valid(name: str) -> None:
    """A key's scope may name a knowledge base made later, but never one no base could have (``../x``)."""
    try:
        check_new_name(name)
    except ZhiwenError:
        ensure_kb_exists(get_settings().kb_root, name)  # an existing base keeps an older name


@keys_app.command("list")
def list_keys() -> None:
    """Every key: id, role, knowledge bases, label, when made, when revoked."""
    store = _store()
    try:
        keys = store.list()
    finally:
        store.close()
    if not keys:
        out.print(
            "no stored keys (ZHIWEN_API_KEYS admin keys are not listed); make one with `zhiwen keys create`"
        )
        return
    table = Table(box=None, pad_edge=False)
    for column in ("id", "role", "knowledge bases", "label", "created", "revoked"):
        table.add_column(column, overflow="fold")

    def when(t: float | None) -> str:
        return time.strftime("%Y-%m-%d %H:%M", time.localtime(t)) if t else ""

    for k in keys:
        table.add_row(k.id, k.role, ", ".join(k.kbs) or "all", k.label, when(k.created), when(k.revoked))
    out.print(table)


@keys_app.command("revoke")
def revoke(
    key_id: Annotated[str, typer.Argument(help="The key's id (from `keys list`) or the key itself.")],
) -> None:
    """Revoke a key: running servers refuse it within ZHIWEN_KEYS_REFRESH_SECONDS (2 s by default)."""
    store = _store()
    try:
        record = store.revoke(key_id)
    finally:
        store.close()
    out.print(f"revoked {record.role} key {record.id}", highlight=False)
