"""Documents that each hold one unique keyword: what the kill-mid-ingest tests ingest, then search for.

Every document is ``doc<NN>.txt``: one sentence with its keyword, then filler in both languages, so that the
keyword alone finds it (BM25) and a document that is only partly written would show.
"""

from __future__ import annotations

FILLER = [
    "Customers can ask any branch for help with this.",
    "The service is available on weekdays and weekends.",
    "Fees are listed in the published tariff of the bank.",
    "本业务可在任意网点办理，也可通过手机银行申请。",
    "办理时请携带本人有效身份证件。",
    "Processing normally completes within two business days.",
]


def keyword(i: int) -> str:
    """Document ``i``'s keyword (unique for ``i`` < 676)."""
    return f"zqx{chr(97 + i // 26)}{chr(97 + i % 26)}marker"


def marker_documents(n: int) -> dict[str, str]:
    """File name -> text of ``n`` documents."""
    return {
        f"doc{i:02d}.txt": f"Document {i} explains the {keyword(i)} procedure. "
        + " ".join(FILLER[(i + j) % len(FILLER)] for j in range(4))
        for i in range(n)
    }
