"""Who may use a bot: its ``allow:`` and ``deny:`` in bots.yaml.

Each rule has up to four keys: ``channel_types``, ``channels`` (cids), ``users`` (ids) and
``roles`` (the user's app-level role, as Stream sends it with the command). Within a key any
entry matches; across keys all must match; a missing or empty key matches everyone. A user
may use the bot when ``allow`` matches and ``deny`` does not: deny wins.

Decided from what Stream sent alone, with no network call: a refused user costs nothing,
not even a Redis round trip. They are told why, and what to ask their admin for.
"""

from __future__ import annotations

from dataclasses import dataclass

KEYS = ("channel_types", "channels", "users", "roles")


@dataclass(frozen=True)
class Asker:
    """Who asks, and where: what the rules look at."""

    user_id: str
    role: str | None  # None when Stream sent none: then no ``roles`` entry matches
    cid: str

    @property
    def channel_type(self) -> str:
        return self.cid.partition(":")[0]


@dataclass(frozen=True)
class Rule:
    """One ``allow:`` or ``deny:`` mapping."""

    channel_types: frozenset[str] = frozenset()
    channels: frozenset[str] = frozenset()
    users: frozenset[str] = frozenset()
    roles: frozenset[str] = frozenset()

    @property
    def restricts(self) -> bool:
        """Whether any key has entries (an empty rule matches everyone, and restricts no one)."""
        return any(getattr(self, key) for key in KEYS)

    def misses(self, asker: Asker) -> list[str]:
        """The keys with entries, none of which ``asker`` matches."""
        values = {"channel_types": asker.channel_type, "channels": asker.cid, "users": asker.user_id,
                  "roles": asker.role}
        return [key for key in KEYS if getattr(self, key) and values[key] not in getattr(self, key)]


@dataclass(frozen=True)
class Access:
    """A bot's ``allow:`` and ``deny:``; both empty (the default) lets everyone in."""

    allow: Rule = Rule()
    deny: Rule = Rule()

    def refusal(self, command: str, asker: Asker) -> str | None:
        """Why ``asker`` may not use ``/command``, in words for them; None when they may."""
        if self.deny.restricts and not self.deny.misses(asker):
            return _denied(command, self.deny, asker)
        missed = self.allow.misses(asker)
        if missed:
            return _not_allowed(command, self.allow, asker, missed)
        return None


def _listing(names: frozenset[str]) -> str:
    ordered = sorted(names)
    return ordered[0] if len(ordered) == 1 else ", ".join(ordered[:-1]) + " or " + ordered[-1]


def _not_allowed(command: str, rule: Rule, asker: Asker, missed: list[str]) -> str:
    # Every missed key must change for the user to get in: they are joined with "and".
    reasons, asks = [], []
    if "users" in missed:
        reasons.append(f"/{command} is open only to the people on its allow list")
        asks.append(f"to add you ({asker.user_id}) to it")
    if "roles" in missed:
        yours = f"yours is {asker.role}" if asker.role else "Stream sent no role for you"
        reasons.append(f"/{command} is open only to the role{'s' if len(rule.roles) > 1 else ''} "
                       f"{_listing(rule.roles)}, and {yours}")
        asks.append(f"for the role {_listing(rule.roles)}")
    if "channels" in missed:
        reasons.append(f"/{command} is not allowed in this channel")
        asks.append(f"to allow it in this channel ({asker.cid})")
    if "channel_types" in missed:
        reasons.append(f"/{command} works only in {_listing(rule.channel_types)} channels")
        asks.append(f"to allow it in {asker.channel_type} channels")
    return f"Sorry, {'; '.join(reasons)}. If you need it, ask your admin {' and '.join(asks)}."


def _denied(command: str, rule: Rule, asker: Asker) -> str:
    # Every key of a deny rule matched, and changing any one would let the user in: "or".
    reasons, asks = [], []
    if rule.users:
        reasons.append("you are on its deny list")
        asks.append(f"to take you ({asker.user_id}) off it")
    if rule.roles:
        reasons.append(f"it is closed to the role {asker.role}")
        asks.append(f"for a role other than {asker.role}")
    if rule.channels:
        reasons.append("it is closed in this channel")
        asks.append(f"to open it in this channel ({asker.cid})")
    if rule.channel_types:
        reasons.append(f"it is closed in {asker.channel_type} channels")
        asks.append(f"to open it in {asker.channel_type} channels")
    return f"Sorry, you can't use /{command} here: {'; '.join(reasons)}. If you need it, ask your admin {' or '.join(asks)}."
