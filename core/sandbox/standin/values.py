"""The values the stand-in is made of: JSON-shaped data, copied cheaply, and Stream's timestamps."""

from __future__ import annotations

import time
from typing import Any, TypeVar

Json = dict[str, Any]
T = TypeVar("T")


def copy_json(value: T) -> T:
    """A deep copy of JSON-shaped data. Everything the stand-in holds is JSON (dicts, lists,
    scalars), and copying just that is several times cheaper than `copy.deepcopy`."""
    # Scalars are tested for in the loops, not in a call per value: most values are scalars.
    if isinstance(value, dict):
        return {key: copy_json(item) if isinstance(item, (dict, list)) else item  # type: ignore[return-value]
                for key, item in value.items()}
    if isinstance(value, list):
        return [copy_json(item) if isinstance(item, (dict, list)) else item for item in value]  # type: ignore[return-value]
    return value


def now() -> str:
    """The current UTC time as Stream writes it, e.g. 2026-01-02T03:04:05.678901Z."""
    seconds, micros = divmod(time.time_ns() // 1000, 1_000_000)
    return f"{time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime(seconds))}.{micros:06d}Z"
