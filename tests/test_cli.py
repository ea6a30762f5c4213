"""The console script, run as a user runs it: check, sync, plugins, and serve against the Stream stand-in."""

from __future__ import annotations

import os
import signal
import subprocess
from datetime import datetime, timezone
from pathlib import Path

from tests.conftest import API_KEY, API_SECRET, ECHO_BOT, final_reply, send
from tests.support.processes import SLASHBOTS, free_port, serve_process, start_process, stop, wait_ready


def run(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([SLASHBOTS, *args], capture_output=True, text=True, timeout=60,
                          env={**os.environ, **(env or {})}, cwd=cwd)


def test_check_lists_the_bots(write_config) -> None:
    result = run("check", "--config", str(write_config(ECHO_BOT)))
    assert result.returncode == 0, result.stderr
    assert "OK, 1 bot(s)" in result.stdout
    assert "/echo [text]" in result.stdout
    assert "posts as Echo bot (echo-bot)" in result.stdout


def test_check_reports_a_bad_file_in_one_line_and_exits_2(write_config) -> None:
    result = run("check", "--config", str(write_config(ECHO_BOT.replace("command: echo", "command: Echo"))))
    assert result.returncode == 2
    assert result.stderr.startswith("error: ")
    assert "bots[0].command: expected a command name" in result.stderr
    assert "Traceback" not in result.stderr


def test_serve_without_config_reads_bots_yaml_in_the_working_directory(tmp_path) -> None:
    result = run("check", cwd=tmp_path)
    assert result.returncode == 2
    assert "bots.yaml: no such file" in result.stderr


def test_plugins_lists_hooks_and_providers(write_config) -> None:
    result = run("plugins", "--config", str(write_config(ECHO_BOT)))
    assert result.returncode == 0, result.stderr
    assert "slashbots.plugins.echo (built-in)" in result.stdout
    assert "hooks: register_providers" in result.stdout
    assert "providers: echo" in result.stdout


GPT_BOT = """\
  - command: gpt
    description: Ask GPT
    provider: chatgpt
    channel_types: [messaging]
    identity: {id: gpt-bot, name: GPT bot}
    tools: [current_time, channel_history]
"""


def test_plugins_lists_each_plugins_tools(write_config) -> None:
    result = run("plugins", "--config", str(write_config(ECHO_BOT)))
    assert result.returncode == 0, result.stderr
    assert "slashbots.plugins.tools (built-in)\n    hooks: register_tools\n    tools: channel_history, current_time\n" \
        in result.stdout


def test_check_lists_each_bots_tools_and_refuses_an_unknown_one(write_config) -> None:
    result = run("check", "--config", str(write_config(GPT_BOT)))
    assert result.returncode == 0, result.stderr
    assert "      tools current_time, channel_history\n" in result.stdout
    result = run("check", "--config", str(write_config(GPT_BOT.replace("current_time,", "weather,"))))
    assert result.returncode == 2
    assert result.stderr.endswith(
        "bots.yaml:10: bots[0].tools[0]: unknown tool 'weather'; installed tools: channel_history, current_time\n")


def test_sync_dry_run_prints_the_plan_and_writes_nothing(stream, write_config) -> None:
    env = {"STREAM_CHAT_URL": stream.url, "SLASHBOTS_PUBLIC_URL": "https://bots.example.com"}
    result = run("sync", "--dry-run", "--config", str(write_config(ECHO_BOT)), env=env)
    assert result.returncode == 0, result.stderr
    assert "create command /echo" in result.stdout
    assert "enable /echo on channel type 'messaging' (keeping ['giphy'])" in result.stdout
    assert "set custom_action_handler_url to https://bots.example.com/webhook" in result.stdout
    assert stream.standin.writes("command") == []
    result = run("sync", "--config", str(write_config(ECHO_BOT)), env=env)
    assert result.returncode == 0
    assert len(stream.standin.writes("command")) == 1
    result = run("sync", "--dry-run", "--config", str(write_config(ECHO_BOT)), env=env)
    assert "already match bots.yaml" in result.stdout


def test_sync_dry_run_shows_the_event_hook_and_keeps_others(stream, write_config) -> None:
    env = {"STREAM_CHAT_URL": stream.url, "SLASHBOTS_PUBLIC_URL": "https://bots.example.com"}
    config = str(write_config(ECHO_BOT + "    mentions: true\n    stop: true\n"))
    result = run("sync", "--dry-run", "--config", config, env=env)
    assert result.returncode == 0, result.stderr
    assert ("add event hook https://bots.example.com/events for message.new and custom events "
            "(keeping the app's 0 other hooks as they are)") in result.stdout
    assert stream.standin.writes("app") == []
    assert run("sync", "--config", config, env=env).returncode == 0
    assert "already match bots.yaml" in run("sync", "--dry-run", "--config", config, env=env).stdout


async def test_join_adds_the_bots_user_to_channels_once(stream, write_config, chat) -> None:
    await chat.upsert_user({"id": "alice", "name": "Alice"})
    for name in ("general", "random"):
        await chat.channel("messaging", name, {"members": ["alice"]}).create("alice")
    env = {"STREAM_CHAT_URL": stream.url}
    config = str(write_config(ECHO_BOT + "    mentions: true\n"))
    for _ in range(2):  # twice: the second changes nothing
        result = run("join", "echo", "messaging:general", "messaging:random", "--config", config, env=env)
        assert result.returncode == 0, result.stderr
        assert "Echo bot (echo-bot) is a member of messaging:general\n" in result.stdout
    assert stream.standin.members("messaging:general") == ["alice", "echo-bot"]
    assert stream.standin.members("messaging:random") == ["alice", "echo-bot"]
    assert stream.standin.user("echo-bot")["name"] == "Echo bot"

    missing = run("join", "echo", "messaging:nowhere", "--config", config, env=env)
    assert missing.returncode == 1 and "error: messaging:nowhere: add members to messaging:nowhere: Stream answered 404" \
        in missing.stderr
    unknown = run("join", "nope", "messaging:general", "--config", config, env=env)
    assert unknown.returncode == 2 and "has no bot with the command 'nope' (it has: echo)" in unknown.stderr
    assert "channels are given as type:id" in run("join", "echo", "general", "--config", config, env=env).stderr
    quiet = run("join", "echo", "messaging:general", "--config", str(write_config(ECHO_BOT)), env=env)
    assert "note: /echo has mentions: false" in quiet.stdout


def test_sync_with_a_wrong_secret_says_so_without_leaking_it(stream, tmp_path) -> None:
    path = tmp_path / "bots.yaml"
    path.write_text(f"stream:\n  api_key: {API_KEY}\n  api_secret: ${{SECRET}}\nbots:\n{ECHO_BOT}")
    result = run("sync", "--config", str(path), env={"STREAM_CHAT_URL": stream.url, "SECRET": "hunter2-wrong-secret-hunter2-wrong"})
    assert result.returncode == 1
    assert "Stream answered 401" in result.stderr
    assert "check STREAM_API_KEY and STREAM_API_SECRET" in result.stderr
    assert "hunter2" not in result.stderr + result.stdout


async def test_serve_end_to_end(stream, write_config, chat) -> None:
    with serve_process(write_config(ECHO_BOT), stream.url) as served:
        await send(chat, "/echo from a real process ✓")
        [reply] = await final_reply(stream.standin, "echo-bot")
        assert reply["text"] == "from a real process ✓"
    # uvicorn shuts down gracefully, then re-raises SIGTERM so the exit status tells how it ended.
    assert served.process.returncode in (0, -signal.SIGTERM), served.output
    assert "Application shutdown complete" in served.output
    assert "sync: create command /echo" in served.output
    assert API_SECRET not in served.output


def test_serve_with_a_wrong_secret_exits_with_one_clear_line(stream, write_config) -> None:
    path = write_config(ECHO_BOT)
    path.write_text(path.read_text().replace(API_SECRET, "a-secret-stream-does-not-know-about"))
    result = subprocess.run([SLASHBOTS, "serve", "--config", str(path), "--port", str(free_port())],
                            capture_output=True, text=True, timeout=60, env={**os.environ, "STREAM_CHAT_URL": stream.url})
    assert result.returncode == 1
    assert "error: could not sync bots with Stream" in result.stderr
    assert "Traceback" not in result.stderr
    assert "a-secret-stream" not in result.stderr


async def test_two_instances_started_at_once_on_one_app_both_become_ready(stream, write_config, chat) -> None:
    config = write_config(ECHO_BOT)
    # Both behind one load balancer: one public URL, as in production.
    public = {"SLASHBOTS_PUBLIC_URL": "http://127.0.0.1:9/lb"}
    # Hold Stream's answer to each create, so both have read the empty command list before either writes.
    stream.standin.inject_fault("POST", r"^/commands$", status=None, delay=0.5, times=2)
    both = [start_process(config, stream.url, env=public) for _ in range(2)]
    try:
        for served in both:
            wait_ready(served)
    finally:
        for served in both:
            stop(served)
    # Usually they race (both read an empty list, the loser's "already exists" becomes an update);
    # on a loaded machine one may start after the other has synced. Either way both are ready.
    # (test_sync.py's racing test makes the race certain, in one process.)
    creates = sorted(c["status"] for c in stream.standin.calls if c["operation"] == "CreateCommand")
    assert creates in ([200], [200, 400]), creates
    assert [c["name"] for c in (await chat.list_commands())["commands"]] == ["echo"]
    assert all("Traceback" not in served.output for served in both), [served.output for served in both]


RULED_GPT = """\
  - command: gpt
    description: Ask GPT
    provider: chatgpt
    channel_types: [messaging, team]
    identity: {id: gpt-bot, name: GPT bot}
    allow: {roles: [user, admin]}
    deny: {channel_types: [team], users: [mallory]}
    budget: {per_user: 50000 tokens/day, per_bot: 2000000 tokens/month}
"""


def test_check_lists_who_may_use_each_bot_and_how_much(write_config) -> None:
    result = run("check", "--config", str(write_config(RULED_GPT + ECHO_BOT + "    rate_limit: none\n")))
    assert result.returncode == 0, result.stderr
    assert [line.strip() for line in result.stdout.splitlines() if line.startswith("      ")][2:] == [
        "rate limit 10 per minute per person (the provider's default)",
        "allow roles admin, user",
        "deny channel types team; users mallory",
        "budget 50,000 tokens a day per person, 2,000,000 tokens a month in all",
        "Repeats what you say",
        "provider echo, posts as Echo bot (echo-bot), channel types messaging",
        "rate limit none",
    ]


def test_usage_without_redis_says_where_usage_lives(write_config) -> None:
    result = run("usage", "--config", str(write_config(ECHO_BOT)), env={"SLASHBOTS_REDIS_URL": ""})
    assert result.returncode == 1
    assert "this configuration has no Redis" in result.stderr
    assert "/metrics" in result.stderr and "slashbots_tokens_total" in result.stderr


def test_usage_reads_the_days_asked_for_from_redis(write_config, redis_server) -> None:
    today = datetime.now(timezone.utc).date().isoformat()
    client = redis_server.client()
    client.hset(f"slashbots:{API_KEY}:usage:{today}", mapping={"echo|alice|prompt": 1200, "echo|alice|completion": 34,
                                                               "echo|bob|prompt": 5, "echo|bob|completion": 5,
                                                               "echo|bob|estimated": 10})
    client.hset(f"slashbots:{API_KEY}:usage:2001-01-01", mapping={"echo|alice|prompt": 999})  # long gone
    result = run("usage", "--config", str(write_config(ECHO_BOT)), "--since", "1d",
                 env={"SLASHBOTS_REDIS_URL": redis_server.url})
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == f"Tokens used {today} (UTC), from the counters in Redis at {redis_server.url}"
    assert [line.split() for line in result.stdout.splitlines()[3:]] == [
        ["/echo", "1,205", "39", "1,244", "10"],
        ["alice", "1,200", "34", "1,234", "0"],
        ["bob", "5", "5", "10", "10"],
    ]
    assert run("usage", "--since", "36d", "--config", "x").returncode == 2  # the counters are kept 35 days
