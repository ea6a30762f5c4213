"""POST /events: mentions, thread follow-ups, refusals said in public, the stop button, and bad input.

Messages are sent with the stream-chat SDK to the Stream stand-in, which delivers each event to
our /events signed, as Stream does (slashbots.testing's ``Bots`` waits until it has, and until
what it set off has ended). Absence is asserted on what the server already decided: the
outcome counters of /metrics once the event was delivered.
"""

from __future__ import annotations

import gzip
import json
import re
from typing import Any, Callable

import httpx
import pytest

from slashbots.sandbox.standin.hook_requests import hook_request
from slashbots.signature import sign
from slashbots.testing import Bots
from tests.conftest import API_KEY, API_SECRET, wait_for
from tests.support import talkers

PLUGINS = "plugins: [tests.support.talkers]\n"
CID = "messaging:general"


def bot(command: str, provider: str = "parrot", *, mentions: bool = True, threads: bool = True, stop: bool = True,
        extra: str = "") -> str:
    return f"""\
  - command: {command}
    description: The {command} bot
    provider: {provider}
    channel_types: [messaging]
    identity: {{id: {command}-bot, name: {command.title()} bot}}
    mentions: {str(mentions).lower()}
    threads: {str(threads).lower()}
    stop: {str(stop).lower()}
{extra}"""


@pytest.fixture
def start(serve) -> Callable[..., Bots]:
    def started(*bots: str, extra: str = "") -> Bots:
        served = serve("".join(bots), PLUGINS + extra)
        return Bots(served.app.state.config, served.app, served.url, served.stream)

    return started


def outcomes(bots: Bots) -> dict[tuple[str, str], float]:
    """/metrics' slashbots_events_total, by (command, outcome)."""
    found = {}
    for match in re.finditer(r'^slashbots_events_total\{command="([^"]*)",outcome="([^"]*)"\} ([0-9.]+)$',
                             httpx.get(bots.url + "/metrics").text, re.MULTILINE):
        found[(match.group(1), match.group(2))] = float(match.group(3))
    return found


def answers(bots: Bots, cid: str = CID) -> list[dict[str, Any]]:
    ids = {b.identity.id for b in bots.config.bots}
    return [m for m in bots.messages(cid) if m["user"]["id"] in ids]


async def post_event(bots: Bots, payload: dict[str, Any], *, secret: str = API_SECRET,
                     webhook_id: str | None = None, compress: bool = False) -> httpx.Response:
    """An event posted to /events the way Stream builds it (slashbots.sandbox.standin.hook_requests)."""
    request = hook_request(payload, api_key=API_KEY, api_secret=secret, compress=compress)
    headers = {**request.headers, **({"X-Webhook-Id": webhook_id} if webhook_id else {})}
    async with httpx.AsyncClient() as client:
        return await client.post(bots.url + "/events", content=request.content, headers=headers)


def message_new(text: str, *, message_id: str = "m-1", user: str = "alice", mentioned: tuple[str, ...] = (),
                cid: str = CID, **fields: Any) -> dict[str, Any]:
    channel_type, _, channel_id = cid.partition(":")
    message = {"id": message_id, "text": text, "type": "regular", "cid": cid, "user": {"id": user},
               "mentioned_users": [{"id": m} for m in mentioned], **fields}
    return {"type": "message.new", "cid": cid, "channel_type": channel_type, "channel_id": channel_id,
            "message": message, "user": {"id": user, "name": user.title()}}


# ---- mentions ------------------------------------------------------------------------------------


async def test_a_mention_is_answered_once_in_the_channel_and_a_plain_message_not_at_all(start) -> None:
    bots = start(bot("ask"))
    assert await bots.message("@Ask bot what is a vector clock?") == "mention: what is a vector clock?"
    [answer] = answers(bots)
    assert "parent_id" not in answer and answer["ai_generated"] and answer["generating"] is False
    assert await bots.message("just chatting, nobody asked") is None
    assert len(answers(bots)) == 1
    assert outcomes(bots)[("", "not_for_us")] == 1  # decided in the ack, with no network call
    assert outcomes(bots)[("ask", "accepted")] == 1


async def test_a_mention_in_a_thread_is_answered_in_that_thread(start) -> None:
    bots = start(bot("ask", threads=False))
    parent = await bots._send("a question for the team", user="bob", cid=CID, parent_id=None)
    assert await bots.message("@Ask bot can you help?", parent_id=parent["id"]) == "mention: can you help?"
    [answer] = answers(bots)
    assert answer["parent_id"] == parent["id"]


async def test_a_command_that_mentions_the_bot_is_answered_once(start) -> None:
    bots = start(bot("ask"))
    assert await bots.command("/ask hi @Ask bot") == "command: hi @Ask bot"
    await bots._settle(bots.messages()[0]["id"], 10)  # its message.new has reached /events too
    assert len(answers(bots)) == 1
    assert outcomes(bots)[("", "a_command")] == 1


async def test_a_message_mentioning_two_bots_is_answered_by_each(start) -> None:
    bots = start(bot("ask"), bot("other"))
    answer = await bots.message("@Ask bot @Other bot both of you")
    assert sorted(answer.split("\n\n")) == ["mention: @Ask bot both of you", "mention: @Other bot both of you"]
    assert sorted(m["user"]["id"] for m in answers(bots)) == ["ask-bot", "other-bot"]


async def test_bots_that_mention_each_other_never_loop(start, chat) -> None:
    bots = start(bot("ask"), bot("other"))
    assert await bots.message("@Ask bot say hi") == "mention: say hi"
    # A bot's message that mentions another bot, not marked ai_generated (the worst case): nobody answers.
    channel = chat.channel("messaging", "general")
    sent = (await channel.send_message({"text": "@Other bot hi!", "mentioned_users": ["other-bot"]}, "ask-bot"))
    await bots._settle(sent["message"]["id"], 10)
    assert len(answers(bots)) == 2  # the first answer and the bot's own message: no answer to it
    counted = outcomes(bots)
    assert counted[("", "from_a_bot")] >= 2  # the answer's message.new and the bot's own message
    assert counted[("ask", "accepted")] == 1 and ("other", "accepted") not in counted


async def test_messages_that_are_never_answered(start, chat) -> None:
    bots = start(bot("ask"), bot("team", mentions=True).replace("[messaging]", "[team]"))
    channel = chat.channel("messaging", "general")
    await chat.upsert_user({"id": "helper", "name": "Helper"})
    sent = [
        await channel.send_message({"text": "@Ask bot hi", "mentioned_users": ["ask-bot"], "ai_generated": True},
                                   "helper"),
        await channel.send_message({"text": "@Ask bot hush", "mentioned_users": ["ask-bot"], "silent": True}, "alice"),
        await channel.send_message({"text": "@Team bot not here", "mentioned_users": ["team-bot"]}, "alice"),
    ]
    for message in sent:
        await bots._settle(message["message"]["id"], 10)
    counted = outcomes(bots)
    assert counted[("", "ai_generated")] == 1 and counted[("", "not_for_us")] == 2
    assert answers(bots) == []


# ---- thread follow-ups ---------------------------------------------------------------------------


async def test_a_follow_up_in_the_bots_thread_is_answered_there_with_the_thread(start) -> None:
    bots = start(bot("ask", extra="    options: {history: true}\n"))
    first = await bots.message("@Ask bot first question")
    assert first.startswith("mention: first question")
    answer = await bots.reply(first, "and a follow-up")
    # Its history: the question this thread's parent answered, the parent, and the follow-up's thread.
    assert answer == f"thread: and a follow-up | @Ask bot first question / {first}"
    follow_up = answers(bots)[-1]
    assert follow_up["parent_id"] == answers(bots)[0]["id"]
    assert outcomes(bots)[("ask", "accepted")] == 2


async def test_a_follow_up_under_the_question_counts_too_and_other_threads_do_not(start) -> None:
    bots = start(bot("ask"))
    await bots.message("@Ask bot question")
    question = bots.messages()[0]
    assert await bots.reply(question, "more about it") == "thread: more about it"
    human = await bots._send("a human thread", user="bob", cid=CID, parent_id=None)
    assert await bots.reply(human, "a reply among humans") is None


async def test_a_bot_without_threads_ignores_follow_ups(start) -> None:
    bots = start(bot("ask", threads=False))
    first = await bots.message("@Ask bot question")
    assert await bots.reply(first, "more") is None
    assert outcomes(bots)[("", "not_for_us")] == 1


async def test_a_thread_unknown_to_shared_state_costs_one_read_of_stream(start) -> None:
    bots = start(bot("ask"))
    first = await bots.message("@Ask bot question")
    bots.app.state.replies.shared.threads = type(bots.app.state.replies.shared.threads)()  # forgotten (a restart)
    reads = lambda: len([c for c in bots.stream_calls if c["operation"] == "GetMessage"])  # noqa: E731
    before = reads()
    assert await bots.reply(first, "still there?") == "thread: still there?"
    assert reads() == before + 1  # the parent, read once: it is the bot's answer
    assert await bots.reply(first, "and again") == "thread: and again"
    assert reads() == before + 1  # remembered since
    human = await bots._send("humans only", user="bob", cid=CID, parent_id=None)
    for text in ("one", "two"):
        assert await bots.reply(human, text) is None
    assert reads() == before + 2  # no bot's thread: read once, then known not to be


# ---- refusals, said in public once a minute --------------------------------------------------------


async def test_a_busy_bot_says_so_in_the_thread_once_a_minute_per_user(start) -> None:
    bots = start(bot("ask"))
    bots.app.state.replies.max_in_flight = 0  # full
    first = await bots._send("@Ask bot one", user="alice", cid=CID, parent_id=None)
    await bots._settle(first["id"], 10)
    [said] = answers(bots)
    assert said["text"] == "I'm busy right now. Please ask again shortly."
    assert said["parent_id"] == first["id"]  # in the thread the message starts
    assert await bots.message("@Ask bot two") is None
    assert await bots.message("@Ask bot three", user="bob") is None
    assert [m["parent_id"] for m in answers(bots)] == [first["id"], bots.messages()[-2]["id"]]  # one for bob too
    metrics = httpx.get(bots.url + "/metrics").text
    assert 'slashbots_public_refusals_total{command="ask",reason="busy",told="yes"} 2.0' in metrics
    assert 'slashbots_public_refusals_total{command="ask",reason="busy",told="no"} 1.0' in metrics


async def test_a_rate_limited_mention_is_told_when_to_try_again(start) -> None:
    bots = start(bot("ask", extra="    rate_limit: {per_user: 1/minute}\n"))
    assert await bots.message("@Ask bot one") == "mention: one"
    assert await bots.message("@Ask bot two") is None
    told = answers(bots)[-1]
    assert re.fullmatch(r"You're asking faster than I may answer\. Please try again in \d+ seconds\.", told["text"])
    assert outcomes(bots)[("ask", "rate_limited")] == 1


async def test_a_mention_by_a_denied_user_is_refused_in_public_and_never_reaches_the_provider(start) -> None:
    bots = start(bot("ask", extra="    deny: {users: [mallory]}\n"))
    assert await bots.message("@Ask bot hello", user="mallory") is None
    [told] = answers(bots)
    assert "mallory" in told["text"] and "admin" in told["text"]  # the admission's words: whom to ask
    assert told["parent_id"]  # in the thread of the refused message
    assert outcomes(bots)[("ask", "denied")] == 1
    assert await bots.message("@Ask bot hello", user="alice") == "mention: hello"  # others are answered


# ---- the stop button -------------------------------------------------------------------------------


async def ticking(bots: Bots, text: str = "@Tick bot go", ticks: int = 3, cid: str = CID) -> dict[str, Any]:
    """Ask the ticker, and return its answer once it shows at least ``ticks`` ticks."""
    sent = await bots._send(text, user="alice", cid=cid, parent_id=None)
    return await wait_for(lambda: next((m for m in bots.messages(cid) if m.get("answer_to") == sent["id"]
                                        and m["text"].count("tick") >= ticks), None), what="ticks")


async def test_stop_keeps_the_text_as_shown_closes_the_provider_and_clears_the_indicator(start) -> None:
    bots = start(bot("tick", "ticker"))
    answer = await ticking(bots)
    await bots.stop(CID)
    stopped = bots.standin.message(answer["id"])
    assert stopped["generating"] is False
    assert answer["answer_to"] in talkers.CLOSED  # the provider's iterator was closed, not left to run
    writes = [c["json"]["set"] for c in bots.stream_calls
              if c["operation"] == "UpdateMessagePartial" and c["path"].endswith(answer["id"])]
    assert writes[-1] == {"generating": False}  # the last write leaves the text alone ...
    texts = [w["text"] for w in writes if "text" in w]
    assert stopped["text"] == texts[-1]  # ... so it shows the last text Stream took
    assert bots.standin.events(CID)[-1]["type"] == "ai_indicator.clear"
    assert outcomes(bots)[("", "stop")] == 1
    metrics = httpx.get(bots.url + "/metrics").text
    assert 'slashbots_reply_seconds_count{command="tick",outcome="stopped"} 1.0' in metrics


async def test_a_stop_naming_a_message_stops_only_that_reply(start) -> None:
    bots = start(bot("tick", "ticker"))
    first = await ticking(bots, "@Tick bot one")
    second = await ticking(bots, "@Tick bot two")
    await bots.stop(CID, message_id=first["id"])
    assert bots.standin.message(first["id"])["generating"] is False
    assert [job.request.message_id for job in bots.app.state.replies.running.values()] == [second["answer_to"]]
    await bots.stop(CID)  # no message id: everything the bots write here
    assert bots.standin.message(second["id"])["generating"] is False


async def test_a_stop_where_nothing_is_generating_or_for_bots_without_stop_changes_nothing(start) -> None:
    bots = start(bot("tick", "ticker", stop=False, extra="    options: {pieces: 40}\n"), bot("ask"))
    await bots.message("@Ask bot hello")
    answer = await ticking(bots)
    await bots.stop(CID)
    assert bots.standin.message(answer["id"])["generating"] is True  # tick has no stop: it goes on
    await bots.stop("messaging:elsewhere")
    counted = outcomes(bots)
    assert counted[("", "stop")] == 2  # ask honours stops here: looked for, nothing to stop


# ---- bad input -------------------------------------------------------------------------------------


@pytest.mark.parametrize("mangle", ["unsigned", "forged", "other_key"])
async def test_unsigned_or_forged_events_are_refused_and_change_nothing(start, mangle: str) -> None:
    bots = start(bot("ask"))
    payload = message_new("@Ask bot hi", mentioned=("ask-bot",))
    request = hook_request(payload, api_key=API_KEY, api_secret=API_SECRET, compress=False)
    headers = dict(request.headers)
    if mangle == "unsigned":
        del headers["X-Signature"]
    elif mangle == "forged":
        headers["X-Signature"] = hook_request(payload, api_key=API_KEY, api_secret="not-the-secret",
                                              compress=False).headers["X-Signature"]
    else:
        headers["X-Api-Key"] = "another-app"
    response = httpx.post(bots.url + "/events", content=request.content, headers=headers)
    assert response.status_code == 401
    assert outcomes(bots) == {("", "unauthorized"): 1}
    assert not bots.app.state.replies.running and answers(bots) == []


async def test_gzipped_events_are_verified_on_the_uncompressed_bytes(start) -> None:
    bots = start(bot("ask"))
    response = await post_event(bots, message_new("@Ask bot zipped", mentioned=("ask-bot",)), compress=True)
    assert response.status_code == 200
    await wait_for(lambda: answers(bots) and not answers(bots)[0]["generating"], what="the answer")
    assert answers(bots)[0]["text"] == "mention: zipped"


@pytest.mark.parametrize("payload", [
    {"type": "message.updated", **{k: v for k, v in message_new("@Ask bot hi", mentioned=("ask-bot",)).items()
                                   if k != "type"}},
    {"type": "reaction.new", "cid": CID},
    {"type": "ai_indicator.stop", "cid": "nosuchtype:general"},
    {"type": "ai_indicator.stop"},
    {"type": "message.new", "cid": CID, "message": "not an object"},
    {"type": "message.new", "message": {"id": "m-9", "text": "@Ask bot", "mentioned_users": ["ask-bot"]}},  # no cid
    {"no": "type"},
])
async def test_unknown_events_and_channels_are_answered_200_and_ignored(start, payload: dict[str, Any]) -> None:
    bots = start(bot("ask"))
    response = await post_event(bots, payload)
    assert response.status_code == 200 and response.json() == {}
    assert not bots.app.state.events.pending and not bots.app.state.replies.running
    assert set(outcomes(bots)) <= {("", "ignored"), ("", "not_for_us"), ("", "not_a_message")}


async def test_a_body_that_is_not_json_is_a_400(start) -> None:
    bots = start(bot("ask"))
    raw = b"not json"
    request = hook_request({}, api_key=API_KEY, api_secret=API_SECRET, compress=False)
    headers = {**request.headers, "X-Signature": sign(raw, API_SECRET)}
    assert httpx.post(bots.url + "/events", content=raw, headers=headers).status_code == 400
    assert httpx.post(bots.url + "/events", content=gzip.compress(b"{}")[:-4],
                      headers={**headers, "X-Signature": sign(b"{}", API_SECRET)}).status_code == 400


async def test_a_redelivered_event_is_answered_once(start) -> None:
    bots = start(bot("ask"))
    payload = message_new("@Ask bot once", mentioned=("ask-bot",))
    for _ in range(3):  # Stream retrying after a timeout: the same delivery, the same message
        assert (await post_event(bots, payload, webhook_id="wh-1")).status_code == 200
    await wait_for(lambda: not bots.app.state.replies.running and answers(bots), what="the answer")
    assert len(answers(bots)) == 1
    assert outcomes(bots)[("ask", "duplicate")] == 2


async def test_the_events_route_answers_json(start) -> None:
    bots = start(bot("ask"))
    response = await post_event(bots, {"type": "health.check"})
    assert response.headers["content-type"] == "application/json" and json.loads(response.content) == {}


def test_a_stored_conversation_job_rebuilds_the_request_its_ack_built() -> None:
    from slashbots.config import parse_config
    from slashbots.conversation_requests import conversation_request, job_payload, rebuild_request

    config = parse_config("stream: {api_key: k, api_secret: s}\nbots:\n" + bot("ask"), "bots.yaml", {})
    bots = {b.command: b for b in config.bots}
    event = message_new("@Ask bot hi there", mentioned=("ask-bot",), parent_id="p-1")
    asked = conversation_request(bots["ask"], "mention", event["message"], event["user"], "wh-123456789abcdef")
    again = rebuild_request(bots, job_payload(asked, event["user"]))
    assert again == asked and (again.trigger, again.args, again.parent_id, again.request_id) == (
        "mention", "hi there", "p-1", "wh-123456789")
    assert rebuild_request({}, job_payload(asked, event["user"])) is None  # its bot is gone from bots.yaml
