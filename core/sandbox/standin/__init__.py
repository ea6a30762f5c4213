"""A local stand-in for the part of Stream Chat's server-side REST API that slashbots uses.

Why it exists: tests and the sandbox need a Stream that runs offline, answers the real
`stream_chat` SDK unchanged (point `base_url` / `STREAM_CHAT_URL` at it), and behaves the way
Stream documents: JWT auth, one app-wide command handler URL called synchronously inside the
send-message call with a 1 s budget and an HMAC signature, commands that work only where the
channel type enables them, a 5,000-character message limit, event hooks sent every message
(bots' own included) and custom events, channel members, soft and hard deletes, and, when
asked, its rate limits: 429s with X-RateLimit-* headers.

It deliberately imports nothing from the rest of slashbots: it plays Stream, independently of
our code. Everything it saw and did is recorded (`calls`, `hook_calls`, `messages()`, ...) for
tests. Where Stream's behaviour is undocumented, the choice made here says so in a comment.

    stand_in.py      StreamStandIn: the parts assembled; what tests read and control
    api.py           the REST routes, and the pipeline every request goes through
    auth.py          server-side auth (api_key + JWT)
    app_config.py    app settings, custom commands, channel types
    chat.py          users, channels and their members, messages, events
    command_hook.py  the custom-command webhook, called inside send-message
    event_hooks.py   event hooks: events posted to the app's hooks, in the background
    hook_requests.py how Stream signs and sends what it posts to hooks
    rate_limits.py   Stream's app rate limits, when asked
    faults.py        fault injection
    recorder.py      the record of calls and hook calls, and what became of them
    feed.py          the live feed a chat page follows
    values.py        JSON copies and Stream's timestamps
    errors.py        Stream's error answers
"""

from slashbots.sandbox.standin.app_config import BUILTIN_COMMANDS
from slashbots.sandbox.standin.errors import StreamError
from slashbots.sandbox.standin.stand_in import StreamStandIn

__all__ = ["BUILTIN_COMMANDS", "StreamError", "StreamStandIn"]
