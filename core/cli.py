"""slashbots serve | check | sync | join | plugins | usage"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from datetime import datetime, timezone
from importlib.metadata import version
from typing import TYPE_CHECKING, Any, Sequence

from slashbots import logs
from slashbots.access import KEYS as ACCESS_KEYS
from slashbots.config import Bot, Config, ConfigError, load_config
from slashbots.defaults import with_provider_defaults
from slashbots.plugin_manager import PluginError, build_providers, close_providers, plugin_manager, providers
from slashbots.proxies import UnsupportedProxy
from slashbots.stream import StreamError, StreamGateway, describe_error
from slashbots.sync import SyncPlan, SyncRefused, events_url_for, handler_url_for, sync_bots
from slashbots.tools import bot_tools, tools
from slashbots.usage_report import day_labels, parse_since, read_usage, report

if TYPE_CHECKING:
    import uvicorn


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="slashbots", description="Chat bots that live in Stream Chat as slash commands.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {version('slashbots')}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="sync the bots with Stream, then serve the webhook")
    _common_options(serve)
    serve.add_argument("--host", default="127.0.0.1", help="interface to listen on (default: %(default)s)")
    serve.add_argument("--port", type=int, default=8000, help="port to listen on (default: %(default)s)")

    check = commands.add_parser("check", help="validate bots.yaml and plugins, and list the bots")
    _common_options(check)

    sync = commands.add_parser("sync", help="make Stream's commands, channel types, handler URL and event hook "
                                            "match bots.yaml")
    _common_options(sync)
    sync.add_argument("--dry-run", action="store_true", help="print what would change, change nothing")
    sync.add_argument("--prune", action="store_true",
                      help="also remove our commands (set 'slashbots') that bots.yaml no longer has")

    join = commands.add_parser("join", help="make a bot's user a member of channels, so Stream's composer "
                                            "suggests it for @mentions")
    _common_options(join)
    join.add_argument("bot_command", metavar="COMMAND", help="the bot, by its command (gpt)")
    join.add_argument("cids", metavar="CID", nargs="+", help="channels, as type:id (messaging:general)")

    listing = commands.add_parser("plugins", help="list loaded plugins, their hooks, providers and tools")
    _common_options(listing)

    usage = commands.add_parser("usage", help="tokens used per bot and per user, from the counters in Redis")
    _common_options(usage)
    usage.add_argument("--since", default="7d", type=_since, metavar="Nd",
                       help="the last N calendar days in UTC, today included, up to 35d (default: %(default)s)")

    args = parser.parse_args(argv)
    logs.configure(args.log_format)
    handler = {"serve": _serve, "check": _check, "sync": _sync, "join": _join, "plugins": _plugins,
               "usage": _usage}[args.command]
    try:
        return handler(args)
    except (ConfigError, PluginError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _common_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default="bots.yaml", help="path to bots.yaml (default: ./%(default)s)")
    parser.add_argument("--log-format", choices=["text", "json"], default="text",
                        help="log lines as readable text or as JSON objects (default: %(default)s)")


def _load(args: argparse.Namespace) -> Config:
    return load_config(args.config)


def _check(args: argparse.Namespace) -> int:
    config = _load(args)
    pm = plugin_manager(config)
    bot_tools(config, pm)
    built = build_providers(config, pm)
    asyncio.run(close_providers(built))
    effective = with_provider_defaults(config, pm)
    print(f"{config.source}: OK, {len(config.bots)} bot(s)")
    for given, bot in zip(config.bots, effective.bots):
        print(f"  /{bot.command} {bot.args}".rstrip())
        print(f"      {bot.description}")
        print(f"      provider {bot.provider}, posts as {bot.identity.name} ({bot.identity.id}), "
              f"channel types {', '.join(bot.channel_types)}")
        if bot.tools:
            print(f"      tools {', '.join(bot.tools)}")
        for line in _rules(bot, provider_default=given.rate_limits is None):
            print(f"      {line}")
        answers = " and ".join(what for what, on in (("@mentions", bot.mentions), ("follow-ups in its threads", bot.threads))
                               if on)
        events = [f"answers {answers}"] if answers else []
        if bot.stop:
            events.append("honours the stop button")
        if events:
            print(f"      through the event webhook: {'; '.join(events)}")
    if not config.stream.configured:
        print("note: no Stream API key and secret are set (STREAM_API_KEY, STREAM_API_SECRET)")
    return 0


def _rules(bot: Bot, *, provider_default: bool) -> list[str]:
    """Who may use the bot and how much, as ``check`` lists them."""
    whom = {"user": "per person", "channel": "per channel", "bot": "in all"}
    limits = ", ".join(f"{rate.text} {whom[scope]}" for scope, rate in (bot.rate_limits or {}).items()) or "none"
    lines = [f"rate limit {limits}" + (" (the provider's default)" if provider_default and bot.rate_limits else "")]
    for name, rule in (("allow", bot.access.allow), ("deny", bot.access.deny)):
        if rule.restricts:
            parts = [f"{key.replace('_', ' ')} {', '.join(sorted(getattr(rule, key)))}"
                     for key in ACCESS_KEYS if getattr(rule, key)]
            lines.append(f"{name} {'; '.join(parts)}")
    if bot.budgets:
        lines.append("budget " + ", ".join(f"{budget.text} {whom[scope]}" for scope, budget in bot.budgets.items()))
    return lines


def _sync(args: argparse.Namespace) -> int:
    config = _load(args)
    # A bot with a broken provider or tools is not worth registering.
    pm = plugin_manager(config)
    bot_tools(config, pm)
    asyncio.run(close_providers(build_providers(config, pm)))
    if not config.stream.configured:
        print("error: set STREAM_API_KEY and STREAM_API_SECRET to sync with Stream", file=sys.stderr)
        return 2
    public_url = os.environ.get("SLASHBOTS_PUBLIC_URL")
    handler_url = handler_url_for(config, public_url)

    try:
        plan = asyncio.run(_sync_once(config, handler_url, events_url_for(config, public_url), dry_run=args.dry_run,
                                      prune=args.prune))
    except StreamError as exc:
        print(f"error: {describe_error(exc)}", file=sys.stderr)
        return 1
    except SyncRefused as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except UnsupportedProxy as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print("plan (nothing written, --dry-run):" if args.dry_run else "synced:")
    for line in plan.describe():
        print(f"  {line}")
    return 0


def _join(args: argparse.Namespace) -> int:
    from slashbots.membership import join

    config = _load(args)
    bot = config.bot(args.bot_command.removeprefix("/"))
    if bot is None:
        known = ", ".join(b.command for b in config.bots)
        print(f"error: {config.source} has no bot with the command {args.bot_command!r} (it has: {known})", file=sys.stderr)
        return 2
    bad = [cid for cid in args.cids if cid.count(":") != 1 or not all(cid.split(":"))]
    if bad:
        print(f"error: channels are given as type:id, such as messaging:general; not {', '.join(bad)}", file=sys.stderr)
        return 2
    if not config.stream.configured:
        print("error: set STREAM_API_KEY and STREAM_API_SECRET to change channels in Stream", file=sys.stderr)
        return 2

    async def run() -> dict[str, Any]:
        gateway = StreamGateway(config.stream.api_key, config.stream.api_secret)
        try:
            return await join(gateway, bot, list(dict.fromkeys(args.cids)))
        finally:
            await gateway.close()

    try:
        results = asyncio.run(run())
    except StreamError as exc:
        print(f"error: {describe_error(exc)}", file=sys.stderr)
        return 1
    for cid, problem in results.items():
        if problem is None:
            print(f"{bot.identity.name} ({bot.identity.id}) is a member of {cid}")
        else:
            print(f"error: {cid}: {problem}", file=sys.stderr)
    if not bot.mentions:
        print(f"note: /{bot.command} has mentions: false in {config.source}, so it does not answer @mentions yet")
    return 1 if any(results.values()) else 0


def _plugins(args: argparse.Namespace) -> int:
    config = load_config(args.config) if os.path.exists(args.config) else None
    pm = plugin_manager(config)
    found = providers(pm)
    installed = tools(pm)
    for name, plugin in sorted(pm.list_name_plugin(), key=lambda item: item[0]):
        hooks = sorted(caller.name for caller in pm.get_hookcallers(plugin) or [])
        package = pm.packages.get(name, "built-in" if name.startswith("slashbots.plugins.") else "bots.yaml")
        print(f"{name} ({package})")
        print(f"    hooks: {', '.join(hooks) or 'none'}")
        names = sorted(entry.name for entry in found.values() if entry.plugin == name)
        if names:
            print(f"    providers: {', '.join(names)}")
        names = sorted(tool.name for tool in installed.values() if tool.plugin == name)
        if names:
            print(f"    tools: {', '.join(names)}")
    return 0


def _since(text: str) -> int:
    try:
        return parse_since(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _usage(args: argparse.Namespace) -> int:
    config = _load(args)
    if not config.server.redis_url:
        print("slashbots usage reads the per-day counters that servers keep in Redis, and this configuration has no "
              "Redis (server.redis_url or SLASHBOTS_REDIS_URL).\nWithout Redis, each server counts the tokens it "
              "served on its own /metrics (http://HOST:PORT/metrics): slashbots_tokens_total{command,kind,source}.",
              file=sys.stderr)
        return 1
    import redis
    from redis.exceptions import RedisError

    from slashbots.app import redis_prefix
    from slashbots.shared.redis_state import redacted

    where = redacted(config.server.redis_url)
    days = day_labels(args.since, datetime.now(timezone.utc))
    client = redis.Redis.from_url(config.server.redis_url, socket_timeout=5.0, socket_connect_timeout=5.0)
    try:
        totals = read_usage(client, redis_prefix(config), days)
    except (RedisError, OSError) as exc:
        print(f"error: cannot read Redis at {where}: {exc}", file=sys.stderr)
        return 1
    finally:
        client.close()
    print("\n".join(report(totals, days, where)))
    return 0


def server_config(app: Any, host: str, port: int) -> uvicorn.Config:
    """How slashbots is served: uvicorn with httptools, on the standard library's event loop."""
    import uvicorn

    # loop="asyncio", not uvloop: libuv accepts one connection per loop iteration (libuv PR #3696),
    # so under load a burst of new connections from Stream waits one busy iteration each. At
    # 1,000 commands/s that took ack p99 from 6 ms to 670 ms (benchmarks/profiles.md).
    # log_config=None: uvicorn logs through ours, in the format asked for. No access log: every
    # command already gets a line of its own (core/replies.py), and a second one costs CPU the acks need.
    # timeout_graceful_shutdown: uvicorn otherwise waits without bound for open connections
    # before the lifespan's shutdown (which drains replies) even starts. Webhook acks take
    # milliseconds, so a second is plenty.
    return uvicorn.Config(app, host=host, port=port, loop="asyncio", http="httptools", log_config=None,
                          access_log=False, timeout_graceful_shutdown=1)


def _server(app: Any, config: uvicorn.Config) -> uvicorn.Server:
    """uvicorn's server, marking the moment a signal asks it to stop: shutdown deadlines count from there."""
    import uvicorn

    class MarkingServer(uvicorn.Server):
        def handle_exit(self, sig: int, frame: Any) -> None:
            app.state.stop_clock.mark()
            super().handle_exit(sig, frame)

    return MarkingServer(config)


def _serve(args: argparse.Namespace) -> int:

    from slashbots.app import StartupError, create_app

    config = _load(args)
    if not config.stream.configured:
        from slashbots.sandbox.runner import serve_sandbox

        try:
            asyncio.run(serve_sandbox(config, args.host, args.port))
        except KeyboardInterrupt:
            return 130
        return 0
    try:
        # A refusal from Stream during the start-up sync (a bad key, say) stops the server.
        app = create_app(config, on_fatal=lambda: setattr(server, "should_exit", True))
    except StartupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    server = _server(app, server_config(app, args.host, args.port))
    server.run()
    if app.state.fatal:
        print(f"error: {app.state.fatal}", file=sys.stderr)
        return 1
    return 0


async def _sync_once(config: Config, handler_url: str | None, events_url: str | None, *, dry_run: bool,
                     prune: bool) -> SyncPlan:
    gateway = StreamGateway(config.stream.api_key, config.stream.api_secret)
    try:
        return await sync_bots(gateway, config, handler_url, dry_run=dry_run, prune=prune, events_url=events_url)
    finally:
        await gateway.close()

if __name__ == "__main__":
    sys.exit(main())
