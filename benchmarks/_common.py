"""Helpers the benchmark scripts share (they import it by path, like ``_metrics``)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["fmt", "ms_stats"]


def ms_stats(xs: Sequence[float]) -> dict[str, float]:
    """Seconds in, milliseconds out."""
    if not xs:
        return {"n": 0}
    a = np.asarray(xs, dtype=float) * 1000
    return {
        "n": len(a),
        "p50": round(float(np.percentile(a, 50)), 3),
        "p95": round(float(np.percentile(a, 95)), 3),
        "mean": round(float(a.mean()), 3),
        "min": round(float(a.min()), 3),
        "max": round(float(a.max()), 3),
    }


def fmt(d: dict[str, Any] | None, key: str = "p50", scale: float = 1.0) -> str:
    v = (d or {}).get(key)
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v * scale:.2f}"
