"""The bank's rules for what an answer may say, whatever its sources say.

A source is data: a poisoned document ("log in at http://... and enter your password and SMS code") is
grounded, so the grounding check passes the model's copy of it. These rules drop such sentences:

- a sentence that asks the customer for a password, PIN, one-time or SMS code, CVV or a full card or ID
  number ("请回复您的密码", "enter your password at ...") -- telling them never to share one is fine;
- a sentence with a link, e-mail address or phone number that is not on the knowledge base's allow-list
  (its official domains, addresses and hotlines: ``zhiwen kb allow``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import urlsplit

__all__ = ["URL_PATTERN", "has_contact", "unsafe_sentences"]

_I = re.IGNORECASE
_ASK = re.compile(
    r"((请|请您|您需要|需要|麻烦|务必)?(输入|提供|回复|发送|告知|填写|发给|报给|确认|提交).{0,12}"
    r"(密码|验证码|动态码|校验码|CVV|安全码|完整卡号|卡号|身份证号|证件号)"
    r"|(密码|验证码|动态码|CVV|安全码|卡号).{0,6}(发送|发给|发到|回复|告知|提供)"
    r"|\b(enter|provide|send|e-?mail|reply with|share|tell us|confirm|type|give us|submit)\b.{0,40}"
    r"\b(password|passcode|pin|one[- ]time (pass)?code|otp|sms code|verification code|cvv|security code|"
    r"card number|id number)s?\b)",
    _I,
)
_NEGATED = re.compile(
    r"(请勿|不要|切勿|不会|绝不|不得|勿|谨防|\b(never|do not|don't|won't|will not|not to|should not|must not)\b)",
    _I,
)
# A link, up to white space, a quote or CJK punctuation; the bank policy (``tools/bank_policy``) removes links
# built from the same pattern.
URL_PATTERN = r"\b(?:https?://|www\.)[^\s<>\"'，。、；）)]+"
_URL = re.compile(URL_PATTERN, _I)
_EMAIL = re.compile(r"\b[\w.+-]+@([\w-]+(?:\.[\w-]+)+)\b")
# A phone number: digits set off by phone words (a bare 20000 is an amount) or written like one.
_PHONE = re.compile(
    r"(?:电话|热线|致电|拨打|联系|客服|\b(?:call|phone|hotline|dial|tel|contact|ring)\b)\D{0,12}"
    r"(\+?\d[\d\s-]{3,18}\d)"
    r"|(\+\d{1,3}[\s-]?\d[\d\s-]{6,16}\d|\b\d{3,4}-\d{3,4}-\d{4}\b|\b1[3-9]\d[\s-]?\d{4}[\s-]?\d{4}\b)",
    _I,
)
_SENTENCE_END = re.compile(r"(?<=[。！？!?])|(?<=[.;；])\s+|\n+")


def _digits(text: str) -> str:
    return re.sub(r"\D", "", text)


def _host(url: str) -> str:
    url = url if "://" in url else f"http://{url}"
    return (urlsplit(url).hostname or "").lower().rstrip(".")


def _allowed_domain(host: str, allow: Iterable[str]) -> bool:
    return any(
        host == a or host.endswith("." + a) for a in (x.lower().lstrip(".") for x in allow if "." in x)
    )


def has_contact(text: str) -> bool:
    """Whether ``text`` holds a link, an e-mail address or a phone number (what needs the allow-list)."""
    return bool(_URL.search(text) or _EMAIL.search(text) or _PHONE.search(text))


def _reason(sentence: str, allow: list[str]) -> str:
    if _ASK.search(sentence) and not _NEGATED.search(sentence):
        return "asks the customer for a credential"
    for url in _URL.findall(sentence):
        if not _allowed_domain(_host(url), allow):
            return f"links to {_host(url)}, which is not on the knowledge base's allow-list"
    for match in _EMAIL.finditer(sentence):
        address, domain = match.group(0).lower(), match.group(1).lower()
        if address not in (a.lower() for a in allow) and not _allowed_domain(domain, allow):
            return f"gives the e-mail address {address}, which is not on the allow-list"
    allowed_numbers = {_digits(a) for a in allow if _digits(a) and "." not in a and "@" not in a}
    for match in _PHONE.finditer(sentence):
        number = _digits(match.group(1) or match.group(2) or "")
        if len(number) >= 5 and number not in allowed_numbers:
            return (
                f"gives the phone number {match.group(1) or match.group(2)}, which is not on the allow-list"
            )
    return ""


def unsafe_sentences(answer: str, allow: list[str]) -> list[tuple[str, str]]:
    """(sentence, why) for each sentence of ``answer`` the bank's rules do not let through."""
    found = []
    for part in _SENTENCE_END.split(answer):
        sentence = part.strip()
        if sentence and (why := _reason(sentence, allow)):
            found.append((sentence, why))
    return found
