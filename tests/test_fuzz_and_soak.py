"""Hostile input in bulk, and a soak under faults: no 5xx, no reply to garbage, one reply per command."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import hmac
import json
import os
import random
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import API_KEY, API_SECRET, bot_messages, send, wait_for
from tests.test_webhook import stream_headers

pytestmark = pytest.mark.slow  # fuzzing and a soak: skip with -m 'not slow' while developing

FUZZ_EXAMPLES = int(os.environ.get("SLASHBOTS_FUZZ_EXAMPLES", "10000"))

scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20)
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=12)
field_values = st.one_of(scalars, st.sampled_from(["echo", "nope", "giphy", "", "messaging:general", "m-1"]), json_values)
messages = st.fixed_dictionaries(
    {},
    optional={
        "id": st.one_of(st.uuids().map(str), field_values),
        "command": st.one_of(st.sampled_from(["echo", "nope", "ECHO", ""]), field_values),
        "cid": st.one_of(st.sampled_from(["messaging:general", "nocolon", ":", "messaging:"]), field_values),
        "text": field_values,
        "args": st.one_of(field_values, st.integers(20_001, 30_000).map(lambda n: "x" * n)),
        "parent_id": field_values,
        "user": st.one_of(st.fixed_dictionaries({"id": field_values}), field_values),
    },
)
valid_commands = st.builds(
    lambda message_id, args, user: {
        "message": {"id": message_id, "text": f"/echo {args}", "command": "echo", "args": args,
                    "cid": "messaging:general", "type": "regular"},
        "user": {"id": user},
    },
    st.uuids().map(str),
    st.text(min_size=1, max_size=50).filter(str.strip),
    st.sampled_from(["alice", "bob", "echo-bot"]),  # the bot's own command must not be answered
)
payloads = st.one_of(
    valid_commands,
    st.fixed_dictionaries({"message": st.one_of(messages, field_values)}, optional={"user": st.one_of(st.fixed_dictionaries({"id": field_values}), field_values)}),
    json_values,
)
bodies = st.one_of(
    payloads.map(lambda value: json.dumps(value).encode()),
    st.binary(max_size=200),
    st.just(b"[" * 50_000),
)


@st.composite
def requests(draw: st.DrawFn) -> tuple[bytes, dict[str, str], bytes]:
    """A body as sent, its headers, and the body the signature is over (if any)."""
    plain = draw(bodies)
    signed_over = draw(st.sampled_from(["plain", "other", "none", "garbage"]))
    headers = stream_headers(plain)
    if signed_over == "other":
        headers["X-Signature"] = hmac.new(API_SECRET.encode(), plain + b" ", hashlib.sha256).hexdigest()
    elif signed_over == "none":
        del headers["X-Signature"]
    elif signed_over == "garbage":
        headers["X-Signature"] = draw(st.text(alphabet="0123456789abcdefXYZ", max_size=70))
    headers["Content-Type"] = draw(st.sampled_from(["application/json", "application/json; charset=utf-8", "text/plain", "multipart/form-data"]))
    if draw(st.booleans()):
        headers["X-Api-Key"] = draw(st.sampled_from([API_KEY, "someone-else", ""]))
    sent = plain
    if draw(st.integers(0, 4)) == 0:
        sent = gzip.compress(plain)
        headers["Content-Encoding"] = "gzip"
    return sent, headers, plain if signed_over == "plain" else b""


def accepted_command(signed: bytes, headers: dict[str, str], response: httpx.Response) -> str | None:
    """The message id of a valid echo command this request should be answered for, else None."""
    if response.status_code != 200 or not signed or "json" not in headers["Content-Type"]:
        return None
    answer = response.json()["message"]
    sent = json.loads(signed)
    sender = sent.get("user") or sent["message"].get("user")
    if answer.get("type") == "error" or sender["id"] == "echo-bot":
        return None
    return answer["id"]


def test_fuzzed_webhooks_never_5xx_and_never_answer_garbage(serve) -> None:
    served = serve()
    accepted: set[str] = set()
    statuses: dict[int, int] = {}
    with httpx.Client(base_url=served.url, timeout=10) as client:

        @settings(max_examples=FUZZ_EXAMPLES, deadline=None, database=None,
                  suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                         HealthCheck.data_too_large, HealthCheck.filter_too_much])
        @given(requests())
        def check(request: tuple[bytes, dict[str, str], bytes]) -> None:
            sent, headers, signed = request
            response = client.post("/webhook", content=sent, headers=headers)
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
            assert response.status_code < 500, response.text
            assert "Traceback" not in response.text
            if response.status_code != 200:
                assert "message" not in response.json()
            message_id = accepted_command(signed, headers, response)
            if message_id:
                accepted.add(message_id)

        check()
    total = sum(statuses.values())
    print(f"fuzz: {total} requests, statuses {dict(sorted(statuses.items()))}, {len(accepted)} valid commands")
    assert total >= FUZZ_EXAMPLES * 0.9
    asyncio.run(wait_for(lambda: not served.app.state.replies.running, timeout=30, what="replies to finish"))
    replies = bot_messages(served.standin, "echo-bot")
    assert len(replies) == len(accepted), "every valid command answered once, nothing else answered"


SOAK_BOT = """\
  - command: soak
    description: Answers under fire
    provider: writer
    channel_types: [messaging]
    identity: {id: soak-bot, name: Soak bot}
    options: {pieces: 6, piece: "{args} ", delay: 0.1, fail_rate: 0.1}
"""


async def test_soak_500_commands_20_users_with_faults_lose_and_duplicate_nothing(serve, chat) -> None:
    # Shedding on loop lag is off for the same reason: the lag here is the test's own crowd.
    served = serve(SOAK_BOT, extra="plugins:\n  - slashbots.paced_writers\nserver: {max_loop_lag_ms: 60000}\n")
    standin = served.standin
    # Stream, slashbots and 20 users share one process and two cores here, so a stall of the
    # test's own making could pass for a slow ack; the ack's speed is measured in benchmarks/.
    # What this test counts is replies, so Stream's patience is stretched from 1 s to 5 s.
    standin.hook_timeout = 5.0
    standin.inject_fault("PUT", r"^/messages/", status=429, times=10_000, chance=0.15, reset_in=1)
    standin.inject_fault("PUT", r"^/messages/", status=500, times=10_000, chance=0.05)
    standin.inject_fault("PUT", r"^/messages/", status=None, times=5, chance=0.01, delay=7.0)  # past the SDK's 6 s timeout
    standin.inject_fault("POST", r"/event$", status=500, times=10_000, chance=0.2)
    users = [f"user{n}" for n in range(20)]
    tokens = [f"t{n:03d}" for n in range(500)]
    rng = random.Random(1)

    async def as_user(user: str, mine: list[str]) -> None:
        for token in mine:  # a command every 0.5-1.5 s from each of 20 people: some 20 a second in all
            await asyncio.sleep(rng.uniform(0.5, 1.5))
            await send(chat, f"/soak {token}", user=user, cid=f"messaging:soak{rng.randrange(5)}")

    await asyncio.gather(*(as_user(user, tokens[i::20]) for i, user in enumerate(users)))
    # Replay some of Stream's deliveries exactly as sent, as a retrying Stream or an attacker would.
    async with httpx.AsyncClient() as client:
        for call in rng.sample(standin.hook_calls, 50):
            raw = json.dumps(call["payload"]).encode()
            replay = await client.post(served.url + "/webhook", content=raw, headers={**stream_headers(raw), "X-Webhook-Id": call["headers"]["X-Webhook-Id"]})
            assert replay.status_code == 200

    def replies() -> list[dict[str, Any]]:
        return [m for n in range(5) for m in bot_messages(standin, "soak-bot", f"messaging:soak{n}")]

    # Waiting on the app's own counters is cheap; reading the stand-in's messages often is not.
    jobs = served.app.state.replies
    await wait_for(lambda: jobs.finished >= 500 and not jobs.running, timeout=120, what="500 finished replies")
    by_token: dict[str, list[str]] = {}
    for message in replies():
        by_token.setdefault(message["text"].split()[0], []).append(message["text"])
    lost = [token for token in tokens if token not in by_token]
    duplicated = [token for token, texts in by_token.items() if len(texts) > 1]
    complete = [t for t, texts in by_token.items() if texts[0] == " ".join([t] * 6)]
    interrupted = [t for t, texts in by_token.items() if "⚠️ Answer interrupted: the model stopped answering." in texts[0]]
    faults = sum(1 for call in standin.calls if call["status"] >= 429)
    late_acks = [call for call in standin.hook_calls if call["status"] != 200]
    assert late_acks == [], "every command reached slashbots"
    print(f"soak: 500 commands, {len(complete)} complete, {len(interrupted)} interrupted, {len(lost)} lost, "
          f"{len(duplicated)} duplicated, {faults} Stream faults injected, 50 replays")
    assert lost == [] and duplicated == []
    assert len(complete) + len(interrupted) == 500
    assert interrupted, "the model-side failures happened"
    assert faults > 100, "the Stream-side faults happened"
