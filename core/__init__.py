"""slashbots: chat bots that live in Stream Chat as slash commands.

This package's top level is the public face for plugin authors::

    from slashbots import hookimpl, Refusal, CommandRequest, ToolUse, ToolError
"""

from typing import Any

from slashbots.hookspecs import hookimpl
from slashbots.provider import ChatMessage, CommandRequest, Provider, ProviderError, Refusal, ToolUse

__all__ = ["ChatMessage", "CommandRequest", "Provider", "ProviderError", "Refusal", "ToolError", "ToolUse", "hookimpl"]


def __getattr__(name: str) -> Any:
    # The tool machinery imports pydantic (a few hundred milliseconds): loaded when a plugin
    # first asks for it, so that `import slashbots` (pytest loads it as a plugin) stays quick.
    if name == "ToolError":
        from slashbots.tool import ToolError

        return ToolError
    raise AttributeError(f"module 'slashbots' has no attribute {name!r}")
