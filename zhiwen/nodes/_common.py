"""Helpers the nodes share: the run's context, its chat models, the conversation history, and the knowledge
base's contacts (allow-list, hotline)."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import weakref
from collections import OrderedDict
from collections.abc import Mapping, Sequence

import httpx
import openai
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AnyMessage, BaseMessage, HumanMessage
from langgraph.runtime import Runtime

from zhiwen.errors import ZhiwenError
from zhiwen.graph.context import Context
from zhiwen.memory.registry import open_kb
from zhiwen.settings import get_settings
from zhiwen.tools.bank_policy import without_fixed_texts
from zhiwen.tools.fence import inert_control_tokens
from zhiwen.tools.language import approx_tokens
from zhiwen.tools.llm import ThinkFilteringChatModel, make_chat_model, message_text
from zhiwen.tools.llm_server import LLMEndpoint, resolve_endpoint
from zhiwen.tools.think_tags import strip_think

__all__ = [
    "achat_model",
    "allow_list",
    "approx_tokens",
    "chat_model",
    "context_of",
    "history",
    "kb_hotline",
    "last_user_text",
    "set_model_override",
]

# Models per (endpoint, max tokens, temperature...): a server's clients choose temperature and max_tokens per
# request, so the cache is bounded, and the models of one endpoint share one HTTP client (connection pool)
# so that evicting a model leaves no connection behind.
_MAX_MODELS = 32
_models: OrderedDict[tuple[object, ...], BaseChatModel] = OrderedDict()
_clients: dict[str, openai.DefaultAsyncHttpxClient] = {}
_models_loop: weakref.ref[asyncio.AbstractEventLoop] | None = None
_lock = threading.Lock()
_override: BaseChatModel | None = None
_override_filters_think = False


def context_of(runtime: Runtime[Context] | None) -> Context:
    """The run's settings: defaults when a caller passes no context.

    A parent graph embedding this one passes its own context: a dict, or an object of its own
    ``context_schema``. Its fields that ``Context`` also has are used (``kb``, ``top_k``...); they used to be
    ignored, so such a parent silently got the default knowledge base.
    """
    ctx = runtime.context if runtime is not None else None
    if isinstance(ctx, Context):
        return ctx
    if ctx is None:
        return Context()
    values = ctx if isinstance(ctx, Mapping) else {n: getattr(ctx, n) for n in _FIELDS if hasattr(ctx, n)}
    return Context(**{n: v for n, v in values.items() if n in _FIELDS and v is not None})  # None: unset


_FIELDS = frozenset(f.name for f in dataclasses.fields(Context))


def set_model_override(model: BaseChatModel | None, filters_think: bool = False) -> None:
    """Use ``model`` instead of an endpoint (unit tests with fake chat models).

    Answers from ``model`` go through ``ThinkFilteringChatModel`` unless ``filters_think`` says the model
    does that itself, as the endpoint model does (benchmarks time the production call shape that way).
    """
    global _override, _override_filters_think
    _override, _override_filters_think = model, filters_think


def _endpoint(ctx: Context) -> LLMEndpoint:
    settings = get_settings()
    if ctx.base_url:
        return LLMEndpoint(
            ctx.base_url.rstrip("/"), ctx.model or settings.llm_model or "default", settings.llm_api_key
        )
    endpoint = resolve_endpoint(settings, ctx.local_model)
    return LLMEndpoint(endpoint.base_url, ctx.model or endpoint.model, endpoint.api_key)


def _forget_models_of_other_loops(loop: asyncio.AbstractEventLoop | None) -> None:
    """Models hold async HTTP connections bound to one event loop: start afresh in a new loop."""
    global _models_loop
    if loop is None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
    if _models_loop is None or _models_loop() is not loop:
        _models.clear()
        _clients.clear()
        _models_loop = weakref.ref(loop)


async def achat_model(ctx: Context, max_tokens: int | None = None, filtered: bool = True) -> BaseChatModel:
    """``chat_model`` for a node: made off the event loop, since a first call reads TLS certificates and
    package metadata from disk and may start (and wait for) the embedded model server."""
    loop = asyncio.get_running_loop()
    return await asyncio.to_thread(chat_model, ctx, max_tokens, filtered, loop)


def chat_model(
    ctx: Context,
    max_tokens: int | None = None,
    filtered: bool = True,
    loop: asyncio.AbstractEventLoop | None = None,
) -> BaseChatModel:
    """The chat model for this run: think-filtered for answers; raw (callers tag it nostream) otherwise.

    ``loop`` is the event loop that will use it (default: the running one).
    """
    if _override is not None:
        if filtered and not _override_filters_think:
            return ThinkFilteringChatModel(inner=_override)
        return _override
    endpoint = _endpoint(ctx)
    tokens = max_tokens or ctx.max_tokens
    key = (endpoint, tokens, ctx.temperature, ctx.request_timeout, filtered, ctx.expect_think_open_in_prompt)
    with _lock:
        _forget_models_of_other_loops(loop)
        model = _models.get(key)
        if model is None:
            if endpoint.base_url not in _clients:
                # The embedded server is on this machine: never through an HTTP_PROXY from the environment.
                local = httpx.URL(endpoint.base_url).host in ("127.0.0.1", "localhost", "::1")
                _clients[endpoint.base_url] = openai.DefaultAsyncHttpxClient(trust_env=not local)
            model = make_chat_model(
                endpoint,
                tokens,
                ctx.temperature,
                ctx.request_timeout,
                filter_think=filtered,
                expect_open_in_prompt=ctx.expect_think_open_in_prompt,
                http_client=_clients[endpoint.base_url],
            )
            _models[key] = model
            while len(_models) > _MAX_MODELS:
                _models.popitem(last=False)
        _models.move_to_end(key)
        return model


def last_user_text(messages: Sequence[AnyMessage]) -> str:
    for m in reversed(messages):
        if isinstance(m, HumanMessage):
            return message_text(m)
    return ""


def history(messages: Sequence[AnyMessage], budget: int) -> list[BaseMessage]:
    """Earlier user/assistant turns (not the last user message), newest kept first within ``budget`` tokens.

    Assistant turns are passed through ``strip_think`` so reasoning never goes back to the model, and lose the
    bank policy's fixed paragraphs (risk reminders, the hand-over: the bank's words, not the answer's); user
    turns have their chat-template control tokens made inert (``tools/fence``).
    """
    earlier = list(messages)
    for i in range(len(earlier) - 1, -1, -1):
        if isinstance(earlier[i], HumanMessage):
            earlier = earlier[:i]
            break
    kept: list[BaseMessage] = []
    used = 0
    for m in reversed(earlier):
        if isinstance(m, HumanMessage):
            clean: BaseMessage = HumanMessage(content=inert_control_tokens(message_text(m)))
        elif isinstance(m, AIMessage):
            clean = AIMessage(content=without_fixed_texts(strip_think(message_text(m)).answer))
        else:
            continue  # system/tool messages from callers are not conversation history
        cost = approx_tokens(message_text(clean))
        if used + cost > budget:
            break
        kept.append(clean)
        used += cost
    kept.reverse()
    while kept and not isinstance(kept[0], HumanMessage):
        kept.pop(0)
    return kept


def allow_list(kb: str) -> list[str]:
    """The contacts an answer may give for ``kb`` (none when there is no such knowledge base)."""
    try:
        return open_kb(kb).allowed_contacts()
    except ZhiwenError:  # no such knowledge base (a greeting needs none): nothing is allowed
        return []


def kb_hotline(kb: str) -> str:
    """The knowledge base's hotline for the bank persona's hand-over ("" when unset or no such base)."""
    try:
        return open_kb(kb).hotline()
    except ZhiwenError:
        return ""
