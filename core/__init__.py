"""slashbots: chat bots that live in Stream Chat as slash commands.

This package's top level is the public face for plugin authors::

    from core import hookimpl, Refusal, CommandRequest
"""

from core.hookspecs import hookimpl
from core.provider import ChatMessage, CommandRequest, Provider, ProviderError, Refusal

__all__ = ["ChatMessage", "CommandRequest", "Provider", "ProviderError", "Refusal", "hookimpl"]
