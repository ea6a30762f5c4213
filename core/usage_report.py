"""``slashbots usage``: tokens per bot and per user, read from the per-day counters on Redis.

Every instance adds each answer's tokens to ``usage:<day>`` (a hash per UTC day, fields
``<command>|<user>|prompt``, ``|completion`` and ``|estimated``; shared/settle.lua), kept
``KEPT_DAYS``. Without Redis there is nothing shared to read: each server counts its own,
on /metrics.
"""

from __future__ import annotations

import re
from collections import defaultdict
from datetime import datetime, timedelta, timezone
from typing import Any, Protocol

from slashbots.usage import KEPT_DAYS

KINDS = ("prompt", "completion", "estimated")


class HashReader(Protocol):
    def hgetall(self, name: str) -> Any: ...


def parse_since(text: str) -> int:
    """``"7d"`` -> 7 days, today (UTC) included; raises ValueError naming the expected form."""
    match = re.fullmatch(r"\s*(\d+)\s*d\s*", text)
    days = int(match.group(1)) if match else 0
    if not 1 <= days <= KEPT_DAYS:
        raise ValueError(f"expected a number of days from 1d to {KEPT_DAYS}d (counters are kept {KEPT_DAYS} days), "
                         f"got {text!r}")
    return days


def day_labels(days: int, now: datetime) -> list[str]:
    """The last ``days`` UTC days, oldest first, today included, as settle.lua names them."""
    today = now.astimezone(timezone.utc).date()
    return [(today - timedelta(days=back)).isoformat() for back in range(days - 1, -1, -1)]


Totals = dict[str, dict[str, dict[str, int]]]  # command -> user -> kind -> tokens


def read_usage(client: HashReader, prefix: str, days: list[str]) -> Totals:
    totals: Totals = defaultdict(lambda: defaultdict(lambda: dict.fromkeys(KINDS, 0)))
    for day in days:
        for field, value in client.hgetall(f"{prefix}usage:{day}").items():
            command, _, rest = _text(field).partition("|")
            user, _, kind = rest.rpartition("|")
            totals[command][user][kind] += int(value)
    return totals


def report(totals: Totals, days: list[str], where: str) -> list[str]:
    """The lines to print: per bot, its total and then its users, biggest first."""
    span = f"{days[0]} to {days[-1]}" if len(days) > 1 else days[0]
    header = f"Tokens used {span} (UTC), from the counters in Redis at {where}"
    if not totals:
        return [header, "", "No tokens counted in that time."]
    rows = [("", "prompt", "completion", "total", "estimated")]
    for command in sorted(totals):
        users = totals[command]
        whole = {kind: sum(counts[kind] for counts in users.values()) for kind in KINDS}
        rows.append(_row(f"/{command}", whole))
        for user, counts in sorted(users.items(), key=lambda item: (-item[1]["prompt"] - item[1]["completion"], item[0])):
            rows.append(_row(f"    {user}", counts))
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    lines = [header, ""]
    for row in rows:
        lines.append("  ".join([row[0].ljust(widths[0]), *(cell.rjust(width) for cell, width in zip(row[1:], widths[1:]))])
                     .rstrip())
    return lines


def _row(label: str, counts: dict[str, int]) -> tuple[str, str, str, str, str]:
    total = counts["prompt"] + counts["completion"]
    return (label, f"{counts['prompt']:,}", f"{counts['completion']:,}", f"{total:,}", f"{counts['estimated']:,}")


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
