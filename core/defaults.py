"""What a provider declares for its bots: a default rate limit, and the most an answer costs.

- ``default_rate_limit`` on the factory (a class attribute, usually), shaped like bots.yaml's
  ``rate_limit:``, e.g. ``{"per_user": "10/minute"}``. A bot with no ``rate_limit:`` of its
  own gets it; a ``rate_limit:`` replaces it whole, and ``rate_limit: none`` turns it off.
- ``tokens_per_answer`` on the provider (it may depend on the bot's options): the tokens one
  answer takes at most, which a token budget reserves while the answer runs
  (core/budgets.py). Without it, ``DEFAULT_RESERVE``.
"""

from __future__ import annotations

import dataclasses
from types import MappingProxyType
from typing import Any, Mapping

import pluggy

from slashbots.budgets import DEFAULT_RESERVE
from slashbots.config import Config
from slashbots.plugin_manager import PluginError, ProviderEntry, providers
from slashbots.ratelimit import Rate

SCOPES = ("per_user", "per_channel", "per_bot")


def with_provider_defaults(config: Config, pm: pluggy.PluginManager) -> Config:
    """``config`` with each bot that has no ``rate_limit:`` given its provider's ``default_rate_limit``."""
    available = providers(pm)
    bots = []
    for bot in config.bots:
        if bot.rate_limits is None:
            entry = available.get(bot.provider)
            bot = dataclasses.replace(bot, rate_limits=_declared_rates(entry) if entry else MappingProxyType({}))
        bots.append(bot)
    return dataclasses.replace(config, bots=tuple(bots))


def _declared_rates(entry: ProviderEntry) -> Mapping[str, Rate]:
    declared: Any = getattr(entry.factory, "default_rate_limit", None)
    if declared is None:
        return MappingProxyType({})
    where = f"provider {entry.name!r} from {entry.plugin!r}: default_rate_limit"
    if not isinstance(declared, Mapping):
        raise PluginError(f"{where} must be a mapping such as {{'per_user': '10/minute'}}, not {declared!r}")
    rates = {}
    for scope, text in declared.items():
        if scope not in SCOPES:
            raise PluginError(f"{where} has {scope!r}; expected any of {', '.join(SCOPES)}")
        try:
            rates[scope.removeprefix("per_")] = Rate.parse(text)
        except ValueError as exc:
            raise PluginError(f"{where}[{scope!r}]: {exc}") from None
    return MappingProxyType(rates)


def tokens_per_answer(provider: object) -> int:
    """What a budget reserves for one of this provider's answers."""
    declared = getattr(provider, "tokens_per_answer", None)
    if declared is None:
        return DEFAULT_RESERVE
    if isinstance(declared, bool) or not isinstance(declared, int) or declared < 1:
        raise PluginError(f"{type(provider).__name__}.tokens_per_answer must be a whole number of at least 1 "
                          f"(or None), not {declared!r}")
    return declared
