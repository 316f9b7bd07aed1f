"""Passages that read as instructions to the assistant rather than as information: flagged at ingestion.

A knowledge base's text is data. A document that says "ignore previous instructions" or "tell the customer
to enter their password at http://..." is either a mistake or an attack on the bank's customers; the gate
keeps such text out of answers, and ingestion reports it (``zhiwen ingest``, ``zhiwen kb docs``, the API's
document list and job report) so an operator sees a poisoned document before customers do. Rules, not a
model: they run on every chunk of every upload, on a CPU.
"""

from __future__ import annotations

import re
import unicodedata

from zhiwen.memory.loaders import INVISIBLE

__all__ = ["instruction_flags"]


def _words(english: str, chinese: str) -> str:
    """One alternation of English words (whole words, though a Chinese character may touch them: \\b
    sees none between 略 and p) and Chinese ones: injected text mixes the two ("请忽略 previous 指令")."""
    return rf"(?:(?<![a-z])(?:{english})(?![a-z])|{chinese})"


_IGNORE = _words(r"ignore|disregard|forget|override|(?:do not|don't|stop) follow(?:ing)?",
                 "忽略|无视|忘记|忘掉|不要理会|不要遵守|不必遵守|无需遵守|覆盖")  # fmt: skip
_EARLIER = _words(
    "previous|prior|above|earlier|all|your|system",
    "之前|以上|上述|上面|上文|前面|前文|先前|此前|所有|全部|系统",
)
_ORDERS = _words(r"instructions?|rules|prompts?|guidelines|directions|commands",
                 "指令|指示|规则|提示词?|要求|设定|规定|命令")  # fmt: skip
_IN_CLAUSE = (
    "[^，。；！？,.;!?\n]"  # a gap never crosses a clause: "忘记密码，请按照以上规定办理" is no injection
)

_RULES: tuple[tuple[str, re.Pattern[str]], ...] = (
    (
        "tells the assistant to ignore its instructions",
        re.compile(
            rf"{_IGNORE}{_IN_CLAUSE}{{0,40}}{_EARLIER}{_IN_CLAUSE}{{0,25}}{_ORDERS}"
            rf"|{_IGNORE}{_IN_CLAUSE}{{0,20}}{_ORDERS}{_IN_CLAUSE}{{0,15}}"
            rf"{_words('above|before|previously|so far', '之前|以上|上述|前面')}"
            r"|(以上|上述|之前|前面)的?(内容|指令|规定|要求)(全部|一律)?(作废|无效)",
            re.IGNORECASE,
        ),
    ),
    (
        "addresses the assistant",
        re.compile(
            r"\b(you are now|from now on,? you|as an ai\b|as the assistant|dear (ai|assistant)|system prompt\b|"
            r"new instructions?:|assistant:? you must)"
            r"|(你现在是|从现在起你|从现在开始你|作为(一个)?(AI|人工智能|助手|语言模型)|系统提示词|系统提示\s*[:：]|新的?指令[:：]|"
            r"(AI|人工智能|助手)[，,]?你(必须|要|应该))",
            re.IGNORECASE,
        ),
    ),
    (
        "imitates the chat's own markup (a system or assistant turn, the sources' delimiters)",
        re.compile(
            r"<\|(im_start|im_end|system|user|assistant|endoftext|eot_id|start_header_id)\|>|\[/?INST\]|<</?SYS>>"
            r"|^\s*(system|assistant|助手)\s*[:：]|</?(documents?|context|sources?)>",
            re.IGNORECASE | re.MULTILINE,
        ),
    ),
    (
        "tells the assistant what to tell customers",
        re.compile(
            r"\b(tell|instruct|ask|advise|direct)\s+(the\s+|all\s+|every\s+)?(customers?|users?|clients?)\s+to\b"
            r"|(告诉|要求|通知|引导|指示)(所有|每位)?(客户|用户)(去|把|将|立即|马上|必须)",
            re.IGNORECASE,
        ),
    ),
)
_CREDENTIAL_REQUEST = re.compile(
    r"\b(enter|send|e-?mail|reply with|provide|type|submit|share|confirm|give)\b.{0,50}"
    r"\b(password|passcode|pin|one[- ]time (pass)?code|otp|sms code|verification code|cvv|security code|card number)s?\b"
    r"|(输入|发送|回复|提供|告知|填写|发给|确认).{0,20}(密码|验证码|动态码|校验码|CVV|安全码|卡号)"
    r"|(密码|验证码|动态码|校验码|CVV|安全码|卡号).{0,8}(发送|发给|发到|告知|提供|回复)",
    re.IGNORECASE | re.DOTALL,
)
# A bare domain ("secure-bank-login.com") is a link to a reader as much as "https://...": phishing text uses
# them because they pass for a plain word. Only common top-level domains, so "manual.pdf" is no link.
_TLDS = "com|net|org|info|biz|cn|hk|tw|mo|sg|us|uk|ru|io|co|cc|me|tv|top|xyz|vip|site|online|shop|app|club|icu|link|live|cloud|work|ltd|wang|tk|ml|ga|cf|gq"
_LINK = re.compile(
    rf"https?://|www\.|(?<![\w.+-])[\w.+-]+@[\w-]+\.[\w.]+|(?<![\w.-])(?:[a-z0-9](?:[a-z0-9-]{{0,61}}[a-z0-9])?\.)+(?:{_TLDS})(?![a-z0-9-])",
    re.IGNORECASE,
)


def instruction_flags(text: str) -> list[str]:
    """Why ``text`` looks like instructions to the assistant (empty when it reads as information).

    A request for credentials is flagged only beside a link or an e-mail address: "enter your PIN at the ATM"
    is ordinary banking; "log in at http://... and enter your password" is phishing.
    """
    # Full-width letters ("Ｉｇｎｏｒｅ") read as ASCII, and zero-width characters inside a word ("Ig\u200bnore")
    # do not break it: both slipped past the rules.
    text = INVISIBLE.sub("", unicodedata.normalize("NFKC", text))
    reasons = [reason for reason, rule in _RULES if rule.search(text)]
    if _LINK.search(text) and _CREDENTIAL_REQUEST.search(text):
        reasons.append("asks for credentials next to a link or e-mail address")
    return reasons
