"""The apology a user reads when a provider fails unexpectedly: the default ``error_reply``.

Written as any plugin would be. ``trylast`` puts it after every other plugin's
``error_reply``, and ``error_reply`` stops at the first answer, so a plugin that words a
failure itself wins and this one speaks only when nobody else did.
"""

from __future__ import annotations

import asyncio

from slashbots import CommandRequest, hookimpl


@hookimpl(trylast=True)
def error_reply(request: CommandRequest, error: BaseException) -> str:
    if isinstance(error, (TimeoutError, asyncio.TimeoutError)):
        kind = "it timed out"
    elif isinstance(error, OSError):  # ConnectionError and the like
        kind = "a network error"
    else:
        kind = "an internal error"
    return f"Sorry, {request.bot.identity.name} could not answer ({kind}). The details are in the server log."
