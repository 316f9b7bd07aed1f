"""Make a knowledge-base passage safe to quote inside a prompt: data that cannot pose as prompt structure.

A chat template turns messages into one string that the serving engine tokenises with its special tokens
recognised (llama.cpp and vLLM both do), so a document holding ``<|im_end|><|im_start|>system`` would open
a system turn of its own in the middle of the user message. The same holds for DeepSeek's full-width
``<｜...｜>`` tokens, Llama 2's ``[INST]``/``<<SYS>>`` and ``<s>``, and ``<think>`` tags, which the think
stripper reads as the model's reasoning. ``quote_source`` rewrites each of them into an inert look-alike
(the bars, brackets or angle brackets swapped for ordinary characters), keeping the text readable, and
folds the passage onto one line so that it cannot start a line of the prompt's own scaffolding
("Question:", "[2]") either. No library does this for arbitrary templates, hence this module.
"""

from __future__ import annotations

import re

__all__ = ["inert_control_tokens", "quote_source"]

# <|im_start|>, <|eot_id|>, <|start_header_id|>... (ChatML, Qwen, Llama 3) and DeepSeek's <｜end▁of▁sentence｜>.
_BAR_TOKEN = re.compile(r"<\s*([|｜])([^<>\n]{0,60}?)\1\s*>")
# Llama 2 / Mistral markers, sentence tokens and reasoning tags, in any case.
_TAG_TOKEN = re.compile(r"\[/?INST\]|<</?SYS>>|</?s>|</?think>", re.IGNORECASE)


def _inert_tag(match: re.Match[str]) -> str:
    token = match.group(0)
    return token.replace("<", "‹").replace(">", "›").replace("[", "(").replace("]", ")")


def inert_control_tokens(text: str) -> str:
    """``text`` with every chat-template control token and think tag made inert, lines kept (for what
    users type: their questions and history are hostile input too)."""
    text = _BAR_TOKEN.sub(lambda m: f"‹{m.group(2).strip()}›", text)
    return _TAG_TOKEN.sub(_inert_tag, text)


def quote_source(text: str) -> str:
    """``text`` on one line, with every chat-template control token and think tag made inert."""
    return " ".join(inert_control_tokens(text).split())
