"""The figures a text states, in one canonical spelling, so an answer's figures can be found in its sources.

"300", "３００" (full width, common in Chinese PDFs), "三百" and "0.03万" are all "300"; "1,000" is "1000";
"3万" is "30000" and "二〇二四" is "2024". Chinese numerals count only where they are clearly a quantity
(with a multiplier such as 十/百/万, or a unit such as 元/年/岁, or several digits in a row), since "一" and
"两" are also ordinary words ("一起", "统一").
"""

from __future__ import annotations

import re
import unicodedata

__all__ = ["figures"]

_ARABIC = re.compile(r"\d+(?:[.,]\d+)*(?:\s*(万|亿))?")
_CN_DIGITS = {
    "零": 0,
    "〇": 0,
    "一": 1,
    "二": 2,
    "两": 2,
    "三": 3,
    "四": 4,
    "五": 5,
    "六": 6,
    "七": 7,
    "八": 8,
    "九": 9,
}
_CN_UNITS = {"十": 10, "百": 100, "千": 1000}
_CN_BIG = {"万": 10**4, "亿": 10**8}
_CHINESE = re.compile(r"(百分之)?([零〇一二两三四五六七八九十百千万亿]+)")
_WORDS = re.compile(r"十分|千万(?![元美港人])|万一|一一")  # "very", "by all means", "in case", "one by one"
_QUANTITY_AFTER = re.compile(
    r"(元|块|角|年|个月|月|日|天|周|小时|分钟|秒|岁|倍|%|％|人|次|笔|张|家|项|公里|米|吨|美元|港元)"
)


def _chinese_value(run: str) -> int | None:
    """The value of a run of Chinese numerals; digit by digit ("二〇二四") when it has no multiplier."""
    if not any(ch in _CN_UNITS or ch in _CN_BIG for ch in run):
        return int("".join(str(_CN_DIGITS[ch]) for ch in run)) if len(run) >= 2 else None
    total = section = digit = 0
    for ch in run:
        if ch in _CN_DIGITS:
            digit = _CN_DIGITS[ch]
        elif ch in _CN_UNITS:
            section += (digit or 1) * _CN_UNITS[ch]
            digit = 0
        else:  # 万 / 亿
            total = (total + section + digit) * _CN_BIG[ch]
            section = digit = 0
    return total + section + digit


def _plain(value: float) -> str:
    return str(int(value)) if value == int(value) else f"{value:g}"


def figures(text: str, lenient: bool = False) -> set[str]:
    """Canonical figures in ``text``. ``lenient`` (for sources) also keeps the bare digits of "3万" ("3")."""
    text = unicodedata.normalize("NFKC", text)
    out: set[str] = set()
    for m in _ARABIC.finditer(text):
        digits = m.group(0).split("万")[0].split("亿")[0].strip().replace(",", "")
        if m.group(1):
            out.add(_plain(float(digits) * _CN_BIG[m.group(1)]))
            if lenient:
                out.add(digits)
        else:
            out.add(digits)
    for m in _CHINESE.finditer(_WORDS.sub(lambda w: " " * len(w.group()), text)):
        percent, run = m.group(1), m.group(2)
        value = None if run in ("万", "亿") else _chinese_value(run.lstrip("万亿"))
        if len(run) == 1 and run in _CN_DIGITS:
            # "一" and "两" alone are words as often as numbers; another digit alone counts before a unit.
            quantity = run not in "一两" and _QUANTITY_AFTER.match(text, m.end()) is not None
            value = _CN_DIGITS[run] if percent or quantity else None
        if value is not None:
            out.add(str(value))
    return out
