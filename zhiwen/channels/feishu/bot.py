"""The bot: a message becomes a turn on the server's graph, answered in a card that follows the stream.

The callback is acknowledged at once (Feishu waits 3 s, then retries); the turn runs in a task of its own,
through ``zhiwen.turns.stream_turn`` like every other face of zhiwen. One zhiwen thread per Feishu thread in
a group (the thread's root message), one per person in a direct chat. The card is updated at most once per
``update_seconds`` while the answer streams (Feishu allows a few updates per second per message), and once
more at the end with the checked answer, its sources and 👍/👎 buttons, which record a rating of that very
turn (its checkpoint) through the same feedback store as ``POST /v1/feedback``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from langgraph.graph.state import CompiledStateGraph

from zhiwen.channels.feishu.cards import RATE, TEXT, card
from zhiwen.channels.feishu.client import FeishuClient
from zhiwen.channels.feishu.dedup import EventLog
from zhiwen.channels.feishu.events import MAX_TEXT, CardAction, Envelope, Message, question_of
from zhiwen.graph.context import context_from_settings
from zhiwen.server.coordination import Coordinator
from zhiwen.tools.language import detect_language
from zhiwen.turns import stream_turn

__all__ = ["FeishuBot", "Record", "Turns"]

log = logging.getLogger("zhiwen.feishu")

Record = Callable[[str, str, str, str], Awaitable[bool]]
"""(thread, checkpoint id, rating "up"/"down", rater) -> whether a rating was stored."""
_CHECKPOINT = re.compile(r"[A-Za-z0-9-]{1,64}")


@dataclass
class Turns:
    """What the bot runs turns on: the server's graph with its checkpointer, thread locks, the feedback path."""

    graph: CompiledStateGraph[Any, Any, Any, Any]
    coordination: Coordinator
    record: Record


def thread_of(message: Message) -> str:
    """The zhiwen thread of a message; ``/`` keeps it apart from every API thread id (which cannot hold one)."""
    if message.chat_type == "p2p":
        return f"feishu/p2p/{message.sender_open_id or message.chat_id}"
    return f"feishu/{message.chat_id}/{message.root_id or message.message_id}"


def _cited(state: dict[str, Any]) -> list[dict[str, Any]]:
    """The sources the answer cites, or all of them when it cites none; none for a refusal."""
    if state.get("quality", {}).get("verdict") == "refuse":
        return []
    sources = list(state.get("sources", []))
    cited = {int(n) for n in re.findall(r"\[(\d{1,3})\]", str(state.get("answer", "")))}
    return [s for s in sources if s.get("n") in cited] or sources


class FeishuBot:
    def __init__(self, kb: str, client: FeishuClient, events: EventLog, turns: Turns,
                 update_seconds: float = 0.7) -> None:  # fmt: skip
        self.kb, self.client, self.events, self.turns = kb, client, events, turns
        self.update_seconds = update_seconds
        self._tasks: set[asyncio.Task[None]] = set()

    async def aclose(self) -> None:
        """Cancel the turns still running, then close the client and the event log."""
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=10)
        await self.client.aclose()
        await asyncio.to_thread(self.events.close)

    async def handle(self, envelope: Envelope) -> dict[str, Any]:
        """The callback's answer to a checked event (an event seen before is answered and not run again)."""
        action = CardAction.of(envelope.event) if envelope.event_type == "card.action.trigger" else None
        message = Message.of(envelope.event) if envelope.event_type == "im.message.receive_v1" else None
        if not await asyncio.to_thread(self.events.first_time, envelope.event_id):
            log.info("Feishu event %s delivered again: not run twice", envelope.event_id)
            return {}
        if message is not None:
            task = asyncio.create_task(self._answer(message))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        if action is not None:
            return await self._rate(action)
        return {}

    async def _answer(self, message: Message) -> None:
        if message.sender_type != "user":  # other bots, and this one: no conversations between machines
            return
        group = message.chat_type != "p2p"
        try:
            mentioned, question = question_of(message, await self.client.bot_open_id() if group else "")
        except Exception as exc:
            log.warning("Feishu: cannot tell whether the bot was mentioned: %r", exc)
            return
        if (group and not mentioned) or not question:
            return
        language = detect_language(question, "zh")
        words = TEXT[language]
        try:
            if len(question) > MAX_TEXT:
                await self.client.reply_card(message.message_id, card(language, words["too_long"]), group)
                return
            turns, thread = self.turns, thread_of(message)
            lease = await turns.coordination.lock_thread(thread)
            if lease is None:
                await self.client.reply_card(message.message_id, card(language, words["busy"]), group)
                return
            try:
                card_id = await self.client.reply_card(message.message_id, card(language, ""), group)
                await self._stream(turns, thread, question, language, card_id)
            finally:
                await lease.release()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("Feishu: answering message %s failed: %r", message.message_id, exc)

    async def _stream(self, turns: Turns, thread: str, question: str, language: str, card_id: str) -> None:
        """Run the turn, showing the draft as it grows, then the checked answer with sources and buttons."""
        words = TEXT[language]
        context = context_from_settings(kb=self.kb)
        context.stream_drafts = True
        draft, shown, last = "", "", time.monotonic()
        state: dict[str, Any] = {}
        try:
            async for event in stream_turn(turns.graph, question, context, thread):
                if event.kind == "token":
                    draft += event.text
                elif event.kind == "retry":
                    draft = ""  # the draft shown is withdrawn: the card is replaced, not appended to
                elif event.kind == "final":
                    state = event.state
                if (
                    event.kind != "final"
                    and draft != shown
                    and time.monotonic() - last >= self.update_seconds
                ):
                    shown, last = draft, time.monotonic()
                    with contextlib.suppress(Exception):  # a skipped update is caught up by the next one
                        await self.client.update_card(card_id, card(language, draft, words["draft"]))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("Feishu: the turn on %s failed: %r", thread, exc)
            await self.client.update_card(card_id, card(language, words["failed"]))
            return
        snapshot = await turns.graph.aget_state({"configurable": {"thread_id": thread}})
        checkpoint = str(snapshot.config.get("configurable", {}).get("checkpoint_id", ""))
        verdict = state.get("quality", {}).get("verdict")
        note = words["refused"] if verdict == "refuse" else words["checked"]
        final = card(language, str(state.get("answer", "")), note, _cited(state),
                     (thread, checkpoint) if checkpoint else None)  # fmt: skip
        await self.client.update_card(card_id, final)

    async def _rate(self, action: CardAction) -> dict[str, Any]:
        """Store a 👍/👎 of the turn the card showed; the toast says whether it was stored."""
        value, operator = action.value, action.operator_open_id
        thread, checkpoint, rating = value.get("thread"), value.get("checkpoint"), value.get("rating")
        ok = (
            value.get("kind") == RATE
            and rating in ("up", "down")
            and isinstance(thread, str)
            and isinstance(checkpoint, str)
            and bool(_CHECKPOINT.fullmatch(checkpoint))
            and _may_rate(thread, action)
        )
        stored = False
        if ok:
            try:
                stored = await self.turns.record(
                    str(thread), str(checkpoint), str(rating), f"feishu:{operator}"
                )
            except Exception as exc:
                log.warning("Feishu: storing a rating failed: %r", exc)
        word = "thanks" if stored else "not_rated"
        text = f"{TEXT['zh'][word]} · {TEXT['en'][word]}"
        return {"toast": {"type": "success" if stored else "error", "content": text}}


def _may_rate(thread: str, action: CardAction) -> bool:
    """A button rates a turn of the chat the card is in (a direct chat's: only that person's)."""
    parts = thread.split("/")
    if len(parts) != 3 or parts[0] != "feishu":
        return False
    if parts[1] == "p2p":
        return parts[2] == action.operator_open_id
    return parts[1] == action.chat_id
