"""Our one event hook among the app's: what bots.yaml needs, merged into what Stream holds.

Stream replaces the app's ``event_hooks`` as a whole on update: a hook left out of the list
is deleted. So the list is read, ours is added or changed in place (keeping its id), every
other hook is written back exactly as read, and nothing is written when nothing differs.

Ours is the webhook hook at our events URL. It subscribes to what is needed and no more:
``message.new`` for bots with ``mentions`` or ``threads``, Stream's custom events (where
``ai_indicator.stop`` belongs) for bots with ``stop``. With no bot needing events, there is
no hook of ours. A hook at the events URL of the deployment that holds the app's handler
URL now is that deployment's hook of ours: it is taken over, or sync refuses, as
``stream.on_foreign_handler`` says for the handler URL itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from slashbots.config import Bot

Hook = dict[str, Any]
OURS = ("hook_type", "enabled", "webhook_url", "event_types", "should_send_custom_events")


def wanted_hook(bots: Sequence[Bot], url: str) -> Hook | None:
    """The hook bots.yaml needs at ``url``, or None when no bot needs events."""
    messages = any(bot.mentions or bot.threads for bot in bots)
    stops = any(bot.stop for bot in bots)
    if not (messages or stops):
        return None
    # An empty event_types means every event: with stops alone, the list names the stop event.
    types = ["message.new"] if messages else ["ai_indicator.stop"]
    return {"hook_type": "webhook", "enabled": True, "webhook_url": url, "event_types": types,
            "should_send_custom_events": stops}


@dataclass
class HookChange:
    """The app's hooks before and after, and what changes for ours."""

    before: list[Hook]
    after: list[Hook]
    action: str  # add, update, remove, take_over
    url: str  # ours (for remove: the one removed)
    taken_from: str | None = None  # take_over: the other deployment's events URL

    def describe(self) -> str:
        others = len([hook for hook in self.after if hook.get("webhook_url") != self.url])
        keeping = f"keeping the app's {others} other hook{'s' if others != 1 else ''} as they are"
        ours = next((hook for hook in self.after if hook.get("webhook_url") == self.url), {})
        what = ", ".join(ours.get("event_types") or []) + (" and custom events" if ours.get("should_send_custom_events") else "")
        if self.action == "add":
            return f"add event hook {self.url} for {what} ({keeping})"
        if self.action == "update":
            return f"update event hook {self.url} to {what}, enabled ({keeping})"
        if self.action == "take_over":
            return (f"point event hook {self.taken_from} at {self.url}, for {what}; it belongs to the deployment whose "
                    f"handler URL on_foreign_handler: replace takes over ({keeping})")
        return f"remove event hook {self.url}: no bot needs events ({keeping})"


def plan_hooks(current: Sequence[Hook], wanted: Hook | None, url: str, foreign_url: str | None) -> HookChange | None:
    """The change that makes ``current`` hold ``wanted`` as ours at ``url`` (None: it does already)."""
    before = [dict(hook) for hook in current]
    ours = [i for i, hook in enumerate(before) if _is_webhook_at(hook, url)]
    if wanted is None:
        if not ours:
            return None
        return HookChange(before, [hook for i, hook in enumerate(before) if i not in ours], "remove", url)
    after = [dict(hook) for hook in before]
    if ours:
        # Two instances racing to add ours may both have written one: the first is kept.
        first, extra = ours[0], set(ours[1:])
        if not extra and all(_same(before[first].get(key), wanted[key]) for key in OURS):
            return None
        after[first].update(wanted)
        return HookChange(before, [hook for i, hook in enumerate(after) if i not in extra], "update", url)
    theirs = next((i for i, hook in enumerate(after) if foreign_url and _is_webhook_at(hook, foreign_url)), None)
    if theirs is not None:
        after[theirs].update(wanted)
        return HookChange(before, after, "take_over", url, taken_from=foreign_url)
    return HookChange(before, [*after, dict(wanted)], "add", url)


def events_url_of(handler_url: str | None) -> str | None:
    """The events URL of the slashbots deployment whose command handler is ``handler_url``."""
    if handler_url and handler_url.rstrip("/").endswith("/webhook"):
        return handler_url.rstrip("/").removesuffix("/webhook") + "/events"
    return None


def _is_webhook_at(hook: Hook, url: str) -> bool:
    return hook.get("hook_type") == "webhook" and hook.get("webhook_url") == url


def _same(have: Any, want: Any) -> bool:
    if isinstance(want, list):
        return isinstance(have, list) and sorted(have) == sorted(want)
    return bool(have) == want if isinstance(want, bool) else have == want
