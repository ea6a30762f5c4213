"""SIGTERM keeps its word: a real `slashbots serve` exits within shutdown_timeout + 5 s, whatever Stream does."""

from __future__ import annotations

import signal
import time

import pytest

from slashbots.testing import send
from tests.conftest import API_KEY, API_SECRET, bot_messages, wait_for
from tests.support.processes import serve_process

SHUTDOWN_TIMEOUT = 2
OVERRUN = 5  # the promise: SIGTERM to exit within shutdown_timeout + 5 s
BOTS = f"""\
stream: {{api_key: {API_KEY}, api_secret: {API_SECRET}}}
plugins: [slashbots.paced_writers]
server: {{shutdown_timeout: {SHUTDOWN_TIMEOUT}}}
bots:
  - command: slow
    description: Takes its time
    provider: writer
    channel_types: [messaging]
    identity: {{id: slow-bot, name: Slow bot}}
    update_interval_ms: 50
    options: {{pieces: 600, piece: "step ", delay: 0.05}}
"""
# Every reply write: posts to a channel, message updates, and indicator events.
WRITES = r"^/channels/[^/]+/[^/]+/(message|event)$|^/messages/"


@pytest.mark.parametrize(("how", "fault"), [
    ("fails every write", {"status": 503}),
    ("never answers a write", {"status": None, "delay": 120.0}),
])
async def test_sigterm_exits_in_time_while_stream_fails_every_write(stream, chat, tmp_path, how, fault) -> None:
    config = tmp_path / "bots.yaml"
    config.write_text(BOTS, encoding="utf-8")
    with serve_process(config, stream.url) as served:
        await send(chat, "/slow please")
        await wait_for(lambda: any(m["text"] for m in bot_messages(stream.standin, "slow-bot")), what="text to stream")
        stream.standin.inject_fault("*", WRITES, times=10**6, **fault)
        started = time.monotonic()
        served.process.send_signal(signal.SIGTERM)
        output, _ = served.process.communicate(timeout=SHUTDOWN_TIMEOUT + OVERRUN + 10)
        took = time.monotonic() - started
    assert took <= SHUTDOWN_TIMEOUT + OVERRUN, f"Stream {how}: SIGTERM to exit took {took:.1f}s\n{output}"
    assert "1 replies could not be ended honestly before shutdown" in output, output
    [reply] = bot_messages(stream.standin, "slow-bot")
    assert "/slow in messaging:general (command " in output and f"reply {reply['id']})" in output, output
    assert API_SECRET not in output
