"""What an operator sees: /healthz, /readyz, /metrics, and one log line per command."""

from __future__ import annotations

import json
import logging
import time

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import ECHO_BOT, final_reply, send, wait_for
from tests.support.processes import serve_process
from tests.test_webhook import command_body, post, stream_headers


def samples(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = httpx.get(url + "/metrics").text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def test_health_and_readiness(serve) -> None:
    served = serve()
    assert httpx.get(served.url + "/healthz").json() == {"status": "ok"}
    assert httpx.get(served.url + "/readyz").json() == {"ready": True, "synced": True, "replies_in_flight": 0}


async def test_metrics_count_commands_outcomes_latency_and_stream_calls(serve, chat) -> None:
    served = serve(ECHO_BOT + "    rate_limit: {per_user: 1/minute}\n")
    await send(chat, "/echo one")
    await final_reply(served.standin, "echo-bot")
    await send(chat, "/echo two")  # over the limit
    raw = json.dumps(command_body("/echo forged")).encode()
    await post(served.url, raw, stream_headers(raw, signature="0" * 64))
    await wait_for(lambda: served.app.state.replies.finished == 1)

    found = samples(served.url)
    assert found[("slashbots_webhook_requests_total", (("command", "echo"), ("outcome", "accepted")))] == 1
    assert found[("slashbots_webhook_requests_total", (("command", "echo"), ("outcome", "rate_limited")))] == 1
    assert found[("slashbots_webhook_requests_total", (("command", ""), ("outcome", "unauthorized")))] == 1
    assert found[("slashbots_ack_seconds_count", ())] == 3
    assert found[("slashbots_ack_seconds_bucket", (("le", "1.0"),))] == 3  # all inside Stream's second
    assert found[("slashbots_reply_seconds_count", (("command", "echo"), ("outcome", "ok")))] == 1
    assert found[("slashbots_first_text_seconds_count", (("command", "echo"),))] == 1
    assert found[("slashbots_stream_calls_total", (("operation", "SendMessage"), ("status", "200")))] >= 1
    # Read to plan, and read again after writing, to see that no instance starting alongside changed it.
    assert found[("slashbots_stream_calls_total", (("operation", "ListCommands"), ("status", "200")))] == 2
    assert found[("slashbots_replies_in_flight", ())] == 0


async def test_stream_429s_and_provider_failures_are_counted(serve, chat) -> None:
    served = serve(ECHO_BOT)
    served.standin.inject_fault("POST", r"/message$", status=None, times=1)  # the user's own send passes
    served.standin.inject_fault("POST", r"/message$", status=429, times=1, reset_in=0)
    await send(chat, "/echo")  # a refusal: Nothing to echo
    await final_reply(served.standin, "echo-bot")
    found = samples(served.url)
    assert found[("slashbots_stream_calls_total", (("operation", "SendMessage"), ("status", "429")))] == 1
    assert found[("slashbots_provider_errors_total", (("command", "echo"), ("kind", "refused")))] == 1


async def test_one_log_line_per_command_with_its_request_id(serve, caplog) -> None:
    caplog.set_level(logging.INFO, logger="slashbots")
    served = serve()
    raw = json.dumps(command_body("/echo logged")).encode()
    headers = stream_headers(raw)
    await post(served.url, raw, headers)
    await final_reply(served.standin, "echo-bot")
    await wait_for(lambda: [r for r in caplog.records if r.name == "slashbots.replies"])
    [line] = [record for record in caplog.records if record.name == "slashbots.replies"]
    assert line.getMessage().startswith("/echo in messaging:general for alice: ok, 6 chars in 1 message(s)")
    assert line.fields["outcome"] == "ok"


def test_json_logs_from_the_command_line(stream, write_config) -> None:
    raw = json.dumps(command_body("/echo in json")).encode()
    headers = stream_headers(raw)
    with serve_process(write_config(ECHO_BOT), stream.url, "--log-format", "json") as served:
        assert httpx.post(served.url + "/webhook", content=raw, headers=headers).status_code == 200
        # The command's log line is written just before its reply metrics: once they count it, it is out.
        deadline = time.monotonic() + 10
        while "slashbots_reply_seconds_count{" not in httpx.get(served.url + "/metrics").text:
            assert time.monotonic() < deadline
            time.sleep(0.05)
    lines = [json.loads(line) for line in served.output.splitlines() if line.strip()]
    assert all({"time", "level", "logger", "message", "request_id"} <= set(line) for line in lines)
    [command] = [line for line in lines if line["logger"] == "slashbots.replies"]
    assert command["request_id"] == headers["X-Webhook-Id"][:12]
    assert command["outcome"] == "ok" and command["command"] == "echo"
    assert any(line["logger"].startswith("uvicorn") for line in lines)
