"""slashbots: chat bots that live in Stream Chat as slash commands.

This package's top level is the public face for plugin authors::

    from slashbots import hookimpl, Refusal, CommandRequest
"""

from slashbots.hookspecs import hookimpl
from slashbots.provider import ChatMessage, CommandRequest, Provider, ProviderError, Refusal

__all__ = ["ChatMessage", "CommandRequest", "Provider", "ProviderError", "Refusal", "hookimpl"]
