"""The figures a text states, in one canonical spelling, so an answer's figures can be found in its sources.

"300", "３００" (full width, common in Chinese PDFs), "三百", "3百" and "0.03万" are all "300"; "1,000" is
"1000"; "3万" and "三万" are "30000"; "百分之三点五" is "3.5"; "二〇二四" is "2024". Chinese numerals count
only where they are clearly a quantity: with a digit and a multiplier ("三百", "十五"), or before a unit
("五年", "百元"), or as a year-like string of digits. "一" and "两" are also ordinary words ("一起",
"统一"), and so are many words with 十/百/千/万 in them ("十分", "百姓", "千万不要", "万一"); approximate
amounts ("几十万", "上百") state no figure.
"""

from __future__ import annotations

import re
import unicodedata

__all__ = ["figures"]

_DIGITS = {
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
_UNITS = {"十": 10, "百": 100, "千": 1000}
_BIG = {"万": 10**4, "亿": 10**8}
_NUMERALS = "零〇一二两三四五六七八九十百千万亿"

# Arabic figures, with Chinese multipliers after them ("3千", "3000万", "1.5亿").
_ARABIC = re.compile(r"\d+(?:[.,]\d+)*(?:\s*([十百千万亿]+))?")
# Runs of Chinese numerals, a decimal part after 点, and 百分之 before them.
_CHINESE = re.compile(rf"(百分之)?([{_NUMERALS}]+)(?:点([零〇一二三四五六七八九]+))?")
# Words made of numeral characters that are not figures (blanked before the runs are read).
_WORDS = re.compile(
    rf"十分|十足|百分点|百姓|百货|百度|千里|(?<![\d{_NUMERALS}])千万(?![元美港人])|万一|一一|统一|唯一|"
    r"一起|一般|一律|一直|一定|一切|一旦|一样|一些|一下|之一"
)
_QUANTITY_AFTER = re.compile(
    r"(元|块|角|年|个月|月|日|天|周|小时|分钟|秒|岁|倍|%|％|人|次|笔|张|家|项|公里|米|吨|美元|港元|期)"
)
_APPROXIMATE_BEFORE = "几数上成近"  # "几十万", "数百", "上百": no figure


def _chinese_value(run: str) -> int:
    """The value of a run with at least one multiplier (十/百/千/万/亿)."""
    total = section = digit = 0
    for ch in run:
        if ch in _DIGITS:
            digit = _DIGITS[ch]
        elif ch in _UNITS:
            section += (digit or 1) * _UNITS[ch]
            digit = 0
        else:  # 万 / 亿
            total = (total + section + digit) * _BIG[ch]
            section = digit = 0
    return total + section + digit


def _plain(value: float) -> str:
    return str(int(value)) if value == int(value) else f"{value:g}"


def _scale(multipliers: str) -> int:
    """ "千万" is 10**7: the multipliers written after a figure, multiplied."""
    scale = 1
    for ch in multipliers:
        scale *= _UNITS.get(ch) or _BIG[ch]
    return scale


def _arabic(text: str, lenient: bool, out: set[str]) -> None:
    for m in _ARABIC.finditer(text):
        digits = m.group(0)[: len(m.group(0)) - len(m.group(1) or "")].strip().replace(",", "")
        if m.group(1):
            out.add(_plain(float(digits) * _scale(m.group(1))))
            if lenient:
                out.add(digits)
        else:
            out.add(digits)


def _chinese(text: str, out: set[str]) -> None:
    blanked = _WORDS.sub(lambda w: " " * len(w.group()), text)
    for m in _CHINESE.finditer(blanked):
        percent, run, decimals = m.group(1), m.group(2), m.group(3)
        before = blanked[m.start() - 1] if m.start() else ""
        if before and (before.isdigit() or before in _APPROXIMATE_BEFORE):
            continue  # "3千" is read with the Arabic digits; "几十万" is no figure
        unit_after = _QUANTITY_AFTER.match(text, m.end()) is not None
        multiplied = any(ch in _UNITS or ch in _BIG for ch in run)
        digits = [ch for ch in run if ch in _DIGITS]
        if multiplied:
            if not digits and not (percent or unit_after or len(run) > 1):
                continue  # a bare 十/百/千/万 in a word ("百货", "千里")
            values = [_chinese_value(run)]
        elif len(run) >= 3 or "〇" in run or "零" in run:
            values = [int("".join(str(_DIGITS[ch]) for ch in run))]  # "二〇二四"
        elif percent or unit_after:
            values = [_DIGITS[ch] for ch in run if ch not in "一两" or (len(run) == 1 and percent)]
            if len(run) == 1 and run in "两" and unit_after:
                values = [2]
        else:
            continue  # "一", "两", "七八" alone: words as often as numbers
        if decimals and len(values) == 1:
            out.add(_plain(float(f"{values[0]}.{''.join(str(_DIGITS[ch]) for ch in decimals)}")))
        else:
            out.update(str(v) for v in values)


_FRACTION = re.compile(r"(\d*)([\u00bc-\u00be\u2150-\u215e])")


def _decimal_fraction(m: re.Match[str]) -> str:
    """ "6½" is 6.5: NFKC alone made it "61⁄2", and so the figures 61 and 2."""
    return _plain(int(m.group(1) or 0) + unicodedata.numeric(m.group(2)))


def figures(text: str, lenient: bool = False) -> set[str]:
    """Canonical figures in ``text``. ``lenient`` (for sources) also keeps the bare digits of "3万" ("3")."""
    text = unicodedata.normalize("NFKC", _FRACTION.sub(_decimal_fraction, text))
    out: set[str] = set()
    _arabic(text, lenient, out)
    _chinese(text, out)
    return out
