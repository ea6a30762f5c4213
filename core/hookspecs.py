"""The plugin contract: every hook slashbots calls, one docstring each.

A plugin is any module (or object) with functions marked ``@hookimpl`` whose names match
the specs below. Hooks are plain functions: pluggy calls them synchronously, so anything
slow belongs in the provider, which is async.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

import pluggy

if TYPE_CHECKING:
    from slashbots.provider import CommandRequest, ProviderFactory

hookspec = pluggy.HookspecMarker("slashbots")
hookimpl = pluggy.HookimplMarker("slashbots")


@hookspec
def register_providers(register: Callable[[str, ProviderFactory], None]) -> None:
    """Register providers: ``register(name, factory)``, where ``factory(options)`` returns a provider."""


@hookspec
def register_tools(register: Callable[..., None]) -> None:
    """Register tools that LLM bots may call: ``register(function)`` or ``register(function, name=...)``."""


@hookspec(firstresult=True)
def error_reply(request: CommandRequest, error: BaseException) -> str | None:
    """Return the text the user sees when a provider fails with ``error``, or None to leave it to others."""
