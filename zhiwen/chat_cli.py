"""``zhiwen ask`` and ``zhiwen chat``: one turn, or an interactive streaming chat with sources."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import signal
import sys
import uuid
from typing import Any

from langgraph.graph.state import CompiledStateGraph
from rich.console import Console
from rich.markup import escape

from zhiwen.consoles import shown
from zhiwen.errors import ZhiwenError
from zhiwen.graph.builder import build
from zhiwen.graph.context import Context
from zhiwen.memory.checkpointer import open_checkpointer
from zhiwen.memory.registry import open_kb
from zhiwen.turns import closing, stream_turn, withdrawn_citations

__all__ = ["ask_once", "chat_loop", "result_json"]


def result_json(state: dict[str, Any], thread_id: str) -> dict[str, Any]:
    """The fields callers care about, JSON-ready."""
    return {
        "answer": state.get("answer", ""),
        "sources": state.get("sources", []),
        "quality": state.get("quality", {}),
        "reasoning": state.get("reasoning", ""),
        "intent": state.get("intent", {}),
        "thread_id": thread_id,
    }


def _print_sources(console: Console, state: dict[str, Any], streamed: str = "") -> None:
    quality = state.get("quality", {})
    sources = state.get("sources", [])
    for s in sources:
        if f"[{s['n']}]" in state.get("answer", ""):
            where = s["source"].rsplit("/", 1)[-1]
            console.print(f"  [dim]\\[{s['n']}] {shown(where)} · {shown(s['title'])}[/]", highlight=False)
    for n in withdrawn_citations(state, streamed):
        why = (
            "that source does not support the sentence citing it"
            if n <= len(sources)
            else "there is no such source"
        )
        console.print(f"  [dim]\\[{n}] removed: {why}[/]", highlight=False)
    verdict = quality.get("verdict", "")
    if verdict:
        grounded = quality.get("grounded")
        extra = f", grounded {grounded:.0%}" if isinstance(grounded, float) else ""
        console.print(f"  [dim]quality: {verdict}{extra}[/]", highlight=False)


async def _show_turn(
    graph: CompiledStateGraph[Any, Any, Any, Any], question: str, ctx: Context, thread: str, console: Console
) -> None:
    """Stream the draft as it is written, then what the reader still needs (see ``turns.closing``)."""
    streamed: list[str] = []
    async for event in stream_turn(graph, question, ctx, thread):
        if event.kind == "token":
            console.print(event.text, end="", highlight=False, markup=False)
            streamed.append(event.text)
        elif event.kind == "retry":
            console.print()
            console.print(event.text, style="yellow", highlight=False, markup=False)
            console.print("[dim](checking the sources again…)[/]")
        elif event.kind == "final":
            end = closing(event.state, "".join(streamed))
            if streamed:
                console.print()
            if end.notice:
                console.print(end.notice, style="yellow", highlight=False, markup=False)
            if end.answer:
                console.print(end.answer, highlight=False, markup=False)
            _print_sources(console, event.state, "".join(streamed))


async def ask_once(
    question: str, ctx: Context, thread_id: str | None, as_json: bool, console: Console
) -> int:
    open_kb(ctx.kb)  # a clear error before the model starts when the knowledge base does not exist
    thread = thread_id or uuid.uuid4().hex
    async with open_checkpointer() as saver:
        graph = build().compile(checkpointer=saver)
        final: dict[str, Any] = {}
        if as_json:
            async for event in stream_turn(graph, question, ctx, thread):
                if event.kind == "final":
                    final = event.state
            sys.stdout.write(json.dumps(result_json(final, thread), ensure_ascii=False, indent=2) + "\n")
        else:
            await _show_turn(graph, question, ctx, thread, console)
    return 0


async def chat_loop(ctx: Context, thread_id: str | None, console: Console) -> None:
    """Read questions until EOF or /quit; /new starts a new conversation."""
    kb = open_kb(ctx.kb)
    thread = thread_id or uuid.uuid4().hex
    console.print(
        f"[bold]知问 zhiwen[/] · knowledge base [cyan]{kb.name}[/] ({kb.stats()['documents']} documents) · "
        f"thread {thread[:8]}\nAsk in Chinese or English. Ctrl-C stops an answer; /new starts over; /quit or Ctrl-D leaves.",
        highlight=False,
    )
    async with open_checkpointer() as saver:
        graph = build().compile(checkpointer=saver)
        while True:
            try:
                question = console.input("[bold green]> [/]")
            except EOFError:
                console.print()
                return
            command = question.strip()
            if not command:
                continue
            if command in ("/quit", "/exit"):
                return
            if command == "/new":
                thread = uuid.uuid4().hex
                console.print(f"[dim]new thread {thread[:8]}[/]")
                continue
            if re.fullmatch(r"/[A-Za-z]+", command):  # a mistyped command is not a question for the model
                console.print(
                    f"[yellow]unknown command {command}[/]: /new starts over, /quit leaves", highlight=False
                )
                continue
            await _turn_in_chat(graph, question, ctx, thread, console)


async def _turn_in_chat(
    graph: CompiledStateGraph[Any, Any, Any, Any], question: str, ctx: Context, thread: str, console: Console
) -> None:
    """One chat turn that Ctrl-C stops (Ctrl-C at the prompt still leaves) and whose failure is reported
    without ending the conversation, which stays in the checkpointer either way."""
    turn = asyncio.ensure_future(_show_turn(graph, question, ctx, thread, console))
    loop = asyncio.get_running_loop()
    with contextlib.suppress(NotImplementedError, RuntimeError):  # no signal handlers on this platform
        loop.add_signal_handler(signal.SIGINT, turn.cancel)
    try:
        await turn
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            raise  # the chat itself is being cancelled, not just this turn
        console.print("\n[dim](stopped)[/]")
    except ZhiwenError as exc:
        console.print(f"\n[red]error:[/] {escape(exc.detail)}", highlight=False)
    finally:
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.remove_signal_handler(
                signal.SIGINT
            )  # back to KeyboardInterrupt: Ctrl-C at the prompt leaves
