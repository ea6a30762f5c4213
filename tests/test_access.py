"""allow: and deny: — who may use a bot, decided in the ack from what Stream sent, at no cost."""

from __future__ import annotations

import json
import re

import pytest

from slashbots.access import Access, Asker, Rule
from slashbots.config import ConfigError, parse_config
from tests.conftest import API_KEY, API_SECRET, ECHO_BOT, bot_messages, final_reply
from tests.test_scale_out import metric
from tests.test_webhook import command_body, post, stream_headers

ALICE = Asker("alice", "user", "messaging:general")


def rule(**keys: list[str]) -> Rule:
    return Rule(**{key: frozenset(values) for key, values in keys.items()})


@pytest.mark.parametrize(("access", "asker", "allowed"), [
    (Access(), ALICE, True),  # nothing said: everyone
    (Access(allow=rule(roles=["user", "admin"])), ALICE, True),  # within a key, any entry
    (Access(allow=rule(roles=["admin"])), ALICE, False),
    (Access(allow=rule(roles=["user"], channels=["messaging:general"])), ALICE, True),  # across keys, all
    (Access(allow=rule(roles=["user"], channels=["messaging:other"])), ALICE, False),
    (Access(allow=rule(roles=["user"], channels=[])), ALICE, True),  # an empty key restricts nothing
    (Access(allow=rule(users=["alice"]), deny=rule(users=["alice"])), ALICE, False),  # deny wins
    (Access(deny=rule()), ALICE, True),  # an empty deny denies nobody
    (Access(deny=rule(roles=["guest"])), ALICE, True),
    (Access(deny=rule(roles=["user"], channel_types=["team"])), ALICE, True),  # a deny's keys must all match
    (Access(deny=rule(roles=["user"], channel_types=["messaging"])), ALICE, False),
    (Access(allow=rule(roles=["user"])), Asker("alice", None, "messaging:general"), False),  # no role sent
    (Access(allow=rule(channel_types=["team"])), Asker("alice", "user", "team:red"), True),
])
def test_the_rules(access: Access, asker: Asker, allowed: bool) -> None:
    assert (access.refusal("gpt", asker) is None) is allowed


def test_a_user_not_allowed_is_told_what_to_ask_their_admin_for() -> None:
    access = Access(allow=rule(users=["bob"], roles=["admin", "moderator"]))
    assert access.refusal("gpt", ALICE) == (
        "Sorry, /gpt is open only to the people on its allow list; /gpt is open only to the roles admin or "
        "moderator, and yours is user. If you need it, ask your admin to add you (alice) to it and for the role "
        "admin or moderator.")
    assert Access(allow=rule(channels=["messaging:ops"])).refusal("gpt", ALICE) == (
        "Sorry, /gpt is not allowed in this channel. If you need it, ask your admin to allow it in this channel "
        "(messaging:general).")


def test_a_denied_user_is_told_why_and_what_would_change_it() -> None:
    assert Access(deny=rule(users=["alice"])).refusal("gpt", ALICE) == (
        "Sorry, you can't use /gpt here: you are on its deny list. If you need it, ask your admin to take you "
        "(alice) off it.")
    assert Access(deny=rule(roles=["user"], channel_types=["messaging"])).refusal("gpt", ALICE) == (
        "Sorry, you can't use /gpt here: it is closed to the role user; it is closed in messaging channels. "
        "If you need it, ask your admin for a role other than user or to open it in messaging channels.")


RULED = ECHO_BOT + """\
    allow: {roles: [user, admin]}
    deny: {users: [mallory]}
"""


def command(text: str, *, user: str = "alice", role: str | None = "user", cid: str = "messaging:general") -> bytes:
    body = command_body(text, user=user, cid=cid)
    if role is None:
        del body["user"]["role"]
    else:
        body["user"]["role"] = role
    return json.dumps(body).encode()


async def test_refused_users_are_told_only_they_see_it_and_the_bot_never_runs(serve) -> None:
    served = serve(RULED)
    refused = {
        "guest": command("/echo hi", role="guest"),
        "mallory": command("/echo hi", user="mallory"),
        "no role": command("/echo hi", role=None),
    }
    for who, raw in refused.items():
        answer = (await post(served.url, raw, stream_headers(raw))).json()["message"]
        assert answer["type"] == "error", who  # an error message: Stream shows it to its sender only
        assert answer["text"].startswith("Sorry, ") and "ask your admin" in answer["text"], who
    raw = command("/echo welcome", role="admin")
    assert (await post(served.url, raw, stream_headers(raw))).json()["message"]["type"] == "regular"
    [reply] = await final_reply(served.standin, "echo-bot")
    assert reply["text"] == "welcome"
    assert len(bot_messages(served.standin, "echo-bot")) == 1
    assert metric(served, "slashbots_refusals_total", command="echo", reason="denied") == 3
    assert metric(served, "slashbots_webhook_requests_total", command="echo", outcome="denied") == 3


async def test_a_refused_user_costs_no_redis_call(serve, redis_server) -> None:
    served = serve(RULED, extra=f"server: {{redis_url: '{redis_server.url}'}}\n")
    shared = served.app.state.replies.shared
    admitted, admit = [], shared.admit

    async def counted(*args, **options):
        admitted.append(args[0])
        return await admit(*args, **options)

    shared.admit = counted
    raw = command("/echo hi", user="mallory")
    assert (await post(served.url, raw, stream_headers(raw))).json()["message"]["type"] == "error"
    assert admitted == [] and not redis_server.client().keys("*claim*")
    raw = command("/echo hi", user="bob")
    assert (await post(served.url, raw, stream_headers(raw))).json()["message"]["type"] == "regular"
    assert len(admitted) == 1  # bob's, in one call


def load(bot_extra: str) -> None:
    text = (f"stream: {{api_key: {API_KEY}, api_secret: {API_SECRET}}}\nbots:\n"
            "  - command: gpt\n    description: Ask\n    provider: echo\n    channel_types: [messaging, team]\n"
            f"    identity: {{id: gpt-bot, name: GPT}}\n{bot_extra}")
    parse_config(text, "bots.yaml", {})


@pytest.mark.parametrize(("extra", "error"), [
    ("    allow: {role: [user]}\n", "bots.yaml:8: bots[0].allow.role: unknown key; did you mean 'roles'? expected "
                                   "one of: channel_types, channels, roles, users"),
    ("    allow: {users: alice}\n", "bots.yaml:8: bots[0].allow.users: expected a list, got 'alice'"),
    ("    deny: {users: [alice, alice]}\n", "bots.yaml:8: bots[0].deny.users[1]: 'alice' is already listed"),
    ("    deny: {channel_types: [livestream]}\n",
     "bots.yaml:8: bots[0].deny.channel_types[0]: 'livestream' is not one of this bot's channel_types "
     "(messaging, team), so this has no effect"),
    ("    allow: {channels: [general]}\n",
     "bots.yaml:8: bots[0].allow.channels[0]: expected a channel id with its type, such as 'messaging:general', "
     "got 'general'"),
    ("    allow: {channels: ['livestream:main']}\n",
     "bots.yaml:8: bots[0].allow.channels[0]: 'livestream' is not one of this bot's channel_types "
     "(messaging, team), so this has no effect"),
    ("    allow: {roles: [a role]}\n",
     "bots.yaml:8: bots[0].allow.roles[0]: expected a Stream role such as 'user', 'admin' or 'guest', got 'a role'"),
    ("    deny: [mallory]\n", "bots.yaml:8: bots[0].deny: expected a mapping, got a list"),
])
def test_config_errors_point_at_the_entry(extra: str, error: str) -> None:
    with pytest.raises(ConfigError, match=f"^{re.escape(error)}$"):
        load(extra)
