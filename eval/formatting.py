"""Figures as short text, the same in the printed tables, messages and reports."""

from __future__ import annotations

import math
from typing import Any


def fmt_value(value: Any) -> str:
    """A figure to three decimals; None as a dash, NaN as 'undefined'."""
    if value is None:
        return "–"
    if isinstance(value, float):
        return "undefined" if math.isnan(value) else f"{value:.3f}"
    return str(value)


def fmt_signed(value: Any) -> str:
    """A difference with its sign (an added value); a dash when there is none."""
    if not isinstance(value, int | float) or math.isnan(value):
        return "–"
    return f"{value:+.3f}"


def json_safe(value: Any) -> Any:
    """JSON-safe copy: NaN/inf become null."""
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else value
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value
