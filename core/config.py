"""bots.yaml -> a validated, immutable Config.

Errors name the file, the line, the path inside the document and what was expected::

    bots.yaml:14: bots[1].identity.id: expected a string of letters, digits, '@', '_' or '-', got 42
"""

from __future__ import annotations

import difflib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping
from urllib.parse import urlsplit

import yaml

from slashbots.access import KEYS as ACCESS_KEYS
from slashbots.access import Access, Rule
from slashbots.budgets import Budget
from slashbots.ratelimit import Rate

MAX_COMMANDS = 50  # Stream's limit on custom commands per app
BUILTIN_COMMANDS = frozenset({"giphy", "mute", "ban", "unmute", "unban"})
COMMAND_NAME = re.compile(r"[a-z][a-z0-9_-]*")
USER_ID = re.compile(r"[A-Za-z0-9@_-]+")
CHANNEL_TYPE = re.compile(r"[a-z0-9_-]+")
CID = re.compile(r"[a-z0-9_-]+:[A-Za-z0-9!@_-]+")
ROLE = re.compile(r"[A-Za-z0-9_-]+")
MODULE_PATH = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
ENV_REFERENCE = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class ConfigError(Exception):
    """bots.yaml is wrong; the message says where and what was expected."""

    def __init__(self, source: str, path: str, message: str, line: int | None = None) -> None:
        where = f"{source}:{line}" if line else source
        super().__init__(f"{where}: {path}: {message}" if path else f"{where}: {message}")
        self.source = source
        self.path = path
        self.message = message
        self.line = line


@dataclass(frozen=True)
class Identity:
    """The Stream user a bot posts as."""

    id: str
    name: str
    image: str | None = None


@dataclass(frozen=True)
class Bot:
    """One slash command and the provider that answers it."""

    command: str
    description: str
    provider: str
    channel_types: tuple[str, ...]
    identity: Identity
    args: str = ""
    options: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    streaming: bool = True
    update_interval_ms: int = 250
    # scope -> rate; None until start-up fills in the provider's default (bots.yaml said nothing)
    rate_limits: Mapping[str, Rate] | None = None
    tools: tuple[str, ...] = ()  # names of the tools this bot's model may call
    access: Access = Access()  # allow: and deny:
    budgets: Mapping[str, Budget] = field(default_factory=lambda: MappingProxyType({}))  # scope -> tokens a period
    # Conversations beyond the command, through Stream's event webhook (core/events.py):
    mentions: bool = False  # answer a message that @mentions the bot
    threads: bool = False  # answer follow-ups in threads the bot answered in
    stop: bool = False  # honour the stop-generating button

    @property
    def needs_events(self) -> bool:
        return self.mentions or self.threads or self.stop


@dataclass(frozen=True)
class StreamSettings:
    api_key: str = ""
    api_secret: str = field(default="", repr=False)
    webhook_url: str | None = None
    events_url: str | None = None  # Stream's event webhook; default $SLASHBOTS_PUBLIC_URL/events
    on_foreign_handler: str = "replace"  # or "refuse": when the app's handler URL points at another deployment

    @property
    def configured(self) -> bool:
        return bool(self.api_key and self.api_secret)


@dataclass(frozen=True)
class ServerSettings:
    max_replies_in_flight: int = 500  # beyond this, new commands are told the bot is busy
    max_loop_lag_ms: int = 250  # ... and so they are while the event loop runs this late
    stream_writes_per_second: float = 15.0  # message patches, shared by all streaming replies
    # Seconds running replies get to finish on SIGTERM; with the 5 s allowed after it, the
    # default fits Kubernetes' 30 s grace period with room to spare.
    shutdown_timeout: float = 20.0
    redis_url: str | None = field(default=None, repr=False)  # shared state for several instances; may hold a password
    redis_timeout_ms: int = 50  # total Redis time allowed in one ack
    reply_lease_seconds: float = 5.0  # with Redis: a dead instance's reply is claimed within twice this
    thread_memory_days: float = 7.0  # how long the threads a bot answered in are remembered


@dataclass(frozen=True)
class Config:
    source: str
    stream: StreamSettings
    bots: tuple[Bot, ...]
    plugins: tuple[str, ...] = ()
    server: ServerSettings = ServerSettings()

    def bot(self, command: str) -> Bot | None:
        return next((bot for bot in self.bots if bot.command == command), None)

    def where(self, path: str) -> int | None:
        """The line of bots.yaml that holds ``path``, for errors raised after loading."""
        return self._lines.get(path)

    _lines: Mapping[str, int] = field(default_factory=dict, repr=False, compare=False)


def load_config(path: str | os.PathLike[str], environ: Mapping[str, str] | None = None) -> Config:
    """Read and validate ``path``; ``${VAR}`` and ``${VAR:-default}`` come from ``environ``."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(source, "", "no such file (pass --config PATH, or create bots.yaml)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(source, "", f"cannot read: {exc}") from None
    return parse_config(text, source, os.environ if environ is None else environ)


def parse_config(text: str, source: str, environ: Mapping[str, str]) -> Config:
    reader = _Reader(source, environ)
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        # PyYAML's words alone ("mapping values are not allowed here") rarely say what to change.
        raise ConfigError(source, "", f"not valid YAML: {problem} (the usual cause is indentation that does not "
                                      "line up, or a missing ':' after a key)", mark.line + 1 if mark else None) from None
    if node is None:
        raise ConfigError(source, "", "the file is empty; expected a mapping with 'bots:'")
    document = reader.plain(node, "")
    return reader.config(document)


class _Reader:
    """Turns the YAML node tree into plain values, remembering each path's line."""

    def __init__(self, source: str, environ: Mapping[str, str]) -> None:
        self.source = source
        self.environ = environ
        self.lines: dict[str, int] = {}
        # compose() already resolved each scalar's tag; a constructor turns it into a value.
        self.constructor = yaml.SafeLoader("")

    def fail(self, path: str, message: str) -> ConfigError:
        return ConfigError(self.source, path, message, self.lines.get(path))

    # -- YAML nodes -> Python, with duplicate keys refused and ${VAR} resolved -------------

    def plain(self, node: yaml.Node, path: str) -> Any:
        self.lines[path] = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            result: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                key = self.plain(key_node, path)
                if not isinstance(key, str):
                    raise ConfigError(self.source, path, f"keys must be strings, got {key!r}", key_node.start_mark.line + 1)
                child = f"{path}.{key}" if path else key
                if key in result:
                    raise ConfigError(self.source, child, "duplicate key", key_node.start_mark.line + 1)
                result[key] = self.plain(value_node, child)
            return result
        if isinstance(node, yaml.SequenceNode):
            return [self.plain(item, f"{path}[{i}]") for i, item in enumerate(node.value)]
        value = self.constructor.construct_object(node, deep=True)
        return self.interpolate(value, path) if isinstance(value, str) else value

    def interpolate(self, value: str, path: str) -> str:
        def substitute(match: re.Match[str]) -> str:
            if match.group(0) == "$$":
                return "$"
            name, default = match.group(1), match.group(2)
            found = self.environ.get(name, "")
            return found if found else (default or "")

        return ENV_REFERENCE.sub(substitute, value)

    # -- validation --------------------------------------------------------------------------

    def config(self, document: Any) -> Config:
        top = self.mapping(document, "", required={"bots"}, optional={"stream", "plugins", "server"})
        stream = self.stream(top.get("stream", {}))
        server = self.server(top.get("server", {}))
        plugins = tuple(
            self.string(item, f"plugins[{i}]", pattern=MODULE_PATH, expected="a dotted module path")
            for i, item in enumerate(self.sequence(top.get("plugins", []), "plugins"))
        )
        entries = self.sequence(top["bots"], "bots")
        if not entries:
            raise self.fail("bots", "expected at least one bot")
        if len(entries) > MAX_COMMANDS:
            raise self.fail("bots", f"Stream allows at most {MAX_COMMANDS} commands per app; found {len(entries)}")
        bots = tuple(self.bot(entry, f"bots[{i}]") for i, entry in enumerate(entries))
        self.check_unique(bots)
        return Config(self.source, stream, bots, plugins, server, _lines=MappingProxyType(dict(self.lines)))

    def server(self, value: Any) -> ServerSettings:
        section = self.mapping(value, "server", optional={"max_replies_in_flight", "max_loop_lag_ms",
                                                          "stream_writes_per_second", "shutdown_timeout",
                                                          "redis_url", "redis_timeout_ms", "reply_lease_seconds",
                                                          "thread_memory_days"})
        defaults = ServerSettings()
        # The environment wins, so one image can run with or without Redis.
        redis_url = self.environ.get("SLASHBOTS_REDIS_URL") or self.optional_string(section, "redis_url", "server")
        if redis_url and urlsplit(redis_url).scheme not in ("redis", "rediss", "unix"):
            where = "SLASHBOTS_REDIS_URL" if self.environ.get("SLASHBOTS_REDIS_URL") else "server.redis_url"
            raise self.fail("server.redis_url", f"{where}: expected a redis://, rediss:// or unix:// URL")
        return ServerSettings(
            redis_url=redis_url or None,
            redis_timeout_ms=self.number(section, "redis_timeout_ms", "server", defaults.redis_timeout_ms,
                                         minimum=1, integer=True),
            reply_lease_seconds=self.number(section, "reply_lease_seconds", "server", defaults.reply_lease_seconds,
                                            minimum=1),
            max_replies_in_flight=self.number(section, "max_replies_in_flight", "server", defaults.max_replies_in_flight,
                                              minimum=1, integer=True),
            max_loop_lag_ms=self.number(section, "max_loop_lag_ms", "server", defaults.max_loop_lag_ms,
                                        minimum=1, integer=True),
            stream_writes_per_second=self.number(section, "stream_writes_per_second", "server",
                                                 defaults.stream_writes_per_second, minimum=0.1),
            shutdown_timeout=self.number(section, "shutdown_timeout", "server", defaults.shutdown_timeout, minimum=0),
            thread_memory_days=self.number(section, "thread_memory_days", "server", defaults.thread_memory_days,
                                           minimum=0.01),
        )

    def stream(self, value: Any) -> StreamSettings:
        section = self.mapping(value, "stream", optional={"api_key", "api_secret", "webhook_url", "events_url",
                                                          "on_foreign_handler"})
        urls = {}
        for key in ("webhook_url", "events_url"):
            urls[key] = self.optional_string(section, key, "stream")
            if urls[key] and not re.match(r"https?://[^/\s]+", urls[key]):
                raise self.fail(f"stream.{key}", f"expected an http(s) URL, got {urls[key]!r}")
        on_foreign = section.get("on_foreign_handler", "replace")
        if on_foreign not in ("replace", "refuse"):
            raise self.fail("stream.on_foreign_handler", f"expected replace or refuse, got {on_foreign!r}")
        return StreamSettings(
            api_key=self.optional_string(section, "api_key", "stream") or "",
            api_secret=self.optional_string(section, "api_secret", "stream") or "",
            webhook_url=urls["webhook_url"],
            events_url=urls["events_url"],
            on_foreign_handler=on_foreign,
        )

    def bot(self, value: Any, path: str) -> Bot:
        entry = self.mapping(
            value,
            path,
            required={"command", "description", "provider", "channel_types", "identity"},
            optional={"args", "options", "streaming", "update_interval_ms", "rate_limit", "tools", "allow", "deny",
                      "budget", "mentions", "threads", "stop"},
        )
        command = self.string(entry["command"], f"{path}.command", pattern=COMMAND_NAME,
                              expected="a command name: lowercase letters, digits, '-' and '_', starting with a letter")
        if len(command) > 255:
            raise self.fail(f"{path}.command", "expected at most 255 characters")
        if command in BUILTIN_COMMANDS:
            raise self.fail(f"{path}.command", f"'{command}' is one of Stream's built-in commands; choose another name")
        channel_types = self.sequence(entry["channel_types"], f"{path}.channel_types")
        if not channel_types:
            raise self.fail(f"{path}.channel_types", "expected at least one channel type, e.g. [messaging]")
        options = entry.get("options", {})
        if not isinstance(options, dict):
            raise self.fail(f"{path}.options", f"expected a mapping, got {_describe(options)}")
        interval = entry.get("update_interval_ms", 250)
        if not isinstance(interval, int) or isinstance(interval, bool) or not 50 <= interval <= 10_000:
            raise self.fail(f"{path}.update_interval_ms", f"expected an integer from 50 to 10000, got {interval!r}")
        streaming = self.flag(entry, "streaming", path, default=True)
        types = tuple(
            self.string(item, f"{path}.channel_types[{i}]", pattern=CHANNEL_TYPE,
                        expected="a channel type name such as 'messaging'")
            for i, item in enumerate(channel_types)
        )
        return Bot(
            command=command,
            description=self.string(entry["description"], f"{path}.description", max_length=255),
            provider=self.string(entry["provider"], f"{path}.provider"),
            channel_types=types,
            identity=self.identity(entry["identity"], f"{path}.identity"),
            args=self.optional_string(entry, "args", path, max_length=255) or "",
            options=_freeze(options),
            streaming=streaming,
            update_interval_ms=interval,
            rate_limits=self.rate_limits(entry["rate_limit"], f"{path}.rate_limit") if "rate_limit" in entry else None,
            tools=self.tools(entry.get("tools", []), f"{path}.tools"),
            access=Access(allow=self.access_rule(entry.get("allow", {}), f"{path}.allow", types),
                          deny=self.access_rule(entry.get("deny", {}), f"{path}.deny", types)),
            budgets=self.budgets(entry.get("budget", {}), f"{path}.budget"),
            mentions=self.flag(entry, "mentions", path),
            threads=self.flag(entry, "threads", path),
            stop=self.flag(entry, "stop", path),
        )

    def flag(self, entry: dict[str, Any], key: str, path: str, *, default: bool = False) -> bool:
        value = entry.get(key, default)
        if not isinstance(value, bool):
            raise self.fail(f"{path}.{key}", f"expected true or false, got {value!r}")
        return value

    def tools(self, value: Any, path: str) -> tuple[str, ...]:
        names: list[str] = []
        for i, item in enumerate(self.sequence(value, path)):
            # Whether such a tool is installed is known once plugins are loaded (core/tools.py).
            name = self.string(item, f"{path}[{i}]", expected="a tool name such as current_time")
            if name in names:
                raise self.fail(f"{path}[{i}]", f"'{name}' is already listed")
            names.append(name)
        return tuple(names)

    def rate_limits(self, value: Any, path: str) -> Mapping[str, Rate]:
        if value == "none":
            return MappingProxyType({})  # off, the provider's default included
        if isinstance(value, bool):  # YAML reads off, no and false as booleans
            raise self.fail(path, f"expected a mapping such as {{per_user: 5/minute}}, or none to turn limits off; "
                                  f"got {value!r}")
        if not isinstance(value, dict):
            raise self.fail(path, f"expected a mapping such as {{per_user: 5/minute}}, or none, got {_describe(value)}")
        section = self.mapping(value, path, optional={"per_user", "per_channel", "per_bot"})
        limits = {}
        for scope, text in section.items():
            try:
                limits[scope.removeprefix("per_")] = Rate.parse(text)
            except ValueError as exc:
                raise self.fail(f"{path}.{scope}", str(exc)) from None
        return MappingProxyType(limits)

    def access_rule(self, value: Any, path: str, channel_types: tuple[str, ...]) -> Rule:
        section = self.mapping(value, path, optional=set(ACCESS_KEYS))
        patterns = {
            "channel_types": (CHANNEL_TYPE, "a channel type name such as 'messaging'"),
            "channels": (CID, "a channel id with its type, such as 'messaging:general'"),
            "users": (USER_ID, "a Stream user id: letters, digits, '@', '_' or '-'"),
            "roles": (ROLE, "a Stream role such as 'user', 'admin' or 'guest'"),
        }
        entries: dict[str, frozenset[str]] = {}
        for key, items in section.items():
            pattern, expected = patterns[key]
            seen: list[str] = []
            for i, item in enumerate(self.sequence(items, f"{path}.{key}")):
                name = self.string(item, f"{path}.{key}[{i}]", pattern=pattern, expected=expected)
                if name in seen:
                    raise self.fail(f"{path}.{key}[{i}]", f"'{name}' is already listed")
                kind = name.partition(":")[0] if key in ("channel_types", "channels") else None
                if kind is not None and kind not in channel_types:
                    # The command is not enabled there: the entry could only be a mistake.
                    raise self.fail(f"{path}.{key}[{i}]", f"'{kind}' is not one of this bot's channel_types "
                                                          f"({', '.join(channel_types)}), so this has no effect")
                seen.append(name)
            entries[key] = frozenset(seen)
        return Rule(**entries)

    def budgets(self, value: Any, path: str) -> Mapping[str, Budget]:
        section = self.mapping(value, path, optional={"per_user", "per_channel", "per_bot"})
        budgets = {}
        for scope, text in section.items():
            try:
                budgets[scope.removeprefix("per_")] = Budget.parse(text)
            except ValueError as exc:
                raise self.fail(f"{path}.{scope}", str(exc)) from None
        return MappingProxyType(budgets)

    def identity(self, value: Any, path: str) -> Identity:
        entry = self.mapping(value, path, required={"id", "name"}, optional={"image"})
        return Identity(
            id=self.string(entry["id"], f"{path}.id", pattern=USER_ID,
                           expected="a Stream user id: letters, digits, '@', '_' or '-'"),
            name=self.string(entry["name"], f"{path}.name"),
            image=self.optional_string(entry, "image", path),
        )

    def check_unique(self, bots: tuple[Bot, ...]) -> None:
        commands: dict[str, int] = {}
        identities: dict[str, tuple[int, Identity]] = {}
        mentioned: dict[str, int] = {}  # identity id -> the bot answering its mentions
        for i, bot in enumerate(bots):
            if bot.command in commands:
                raise self.fail(f"bots[{i}].command", f"'{bot.command}' is already defined by bots[{commands[bot.command]}]")
            commands[bot.command] = i
            first = identities.setdefault(bot.identity.id, (i, bot.identity))
            if first[1] != bot.identity:
                raise self.fail(
                    f"bots[{i}].identity",
                    f"identity '{bot.identity.id}' is also used by bots[{first[0]}] with a different name or image; "
                    "a Stream user has one name and image",
                )
            if bot.mentions:
                # A mention names a user, not a command: two bots behind one user could not tell whose it is.
                other = mentioned.setdefault(bot.identity.id, i)
                if other != i:
                    raise self.fail(
                        f"bots[{i}].mentions",
                        f"bots[{other}] (/{bots[other].command}) and bots[{i}] (/{bot.command}) both answer mentions of "
                        f"'{bot.identity.id}'; a mention cannot say which of them is meant: give one its own identity, "
                        "or turn mentions off for one",
                    )

    # -- primitives ----------------------------------------------------------------------------

    def mapping(self, value: Any, path: str, required: set[str] = frozenset(), optional: set[str] = frozenset()) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(path, f"expected a mapping, got {_describe(value)}")
        allowed = required | optional
        for key in value:
            if key not in allowed:
                hint = difflib.get_close_matches(key, allowed, n=1)
                suggestion = f"did you mean '{hint[0]}'? " if hint else ""
                child = f"{path}.{key}" if path else key
                raise self.fail(child, f"unknown key; {suggestion}expected one of: {', '.join(sorted(allowed))}")
        for key in sorted(required):
            if key not in value:
                raise self.fail(path, f"missing required key '{key}'")
        return value

    def number(self, entry: dict[str, Any], key: str, path: str, default: float, *, minimum: float,
               integer: bool = False) -> Any:
        value = entry.get(key, default)
        kind = int if integer else (int, float)
        if isinstance(value, bool) or not isinstance(value, kind) or value < minimum:
            expected = "an integer" if integer else "a number"
            raise self.fail(f"{path}.{key}", f"expected {expected} of at least {minimum:g}, got {value!r}")
        return value

    def sequence(self, value: Any, path: str) -> list[Any]:
        if not isinstance(value, list):
            raise self.fail(path, f"expected a list, got {_describe(value)}")
        return value

    def string(self, value: Any, path: str, *, pattern: re.Pattern[str] | None = None,
               expected: str = "a non-empty string", max_length: int | None = None) -> str:
        if not isinstance(value, str) or not value.strip():
            raise self.fail(path, f"expected {expected}, got {_describe(value)}")
        if pattern is not None and not pattern.fullmatch(value):
            raise self.fail(path, f"expected {expected}, got {value!r}")
        if max_length is not None and len(value) > max_length:
            raise self.fail(path, f"expected at most {max_length} characters, got {len(value)}")
        return value

    def optional_string(self, entry: dict[str, Any], key: str, path: str, max_length: int | None = None) -> str | None:
        value = entry.get(key)
        child = f"{path}.{key}" if path else key
        if value is None or value == "":
            return None
        if not isinstance(value, str):
            raise self.fail(child, f"expected a string, got {_describe(value)}")
        if max_length is not None and len(value) > max_length:
            raise self.fail(child, f"expected at most {max_length} characters, got {len(value)}")
        return value


def _describe(value: Any) -> str:
    if value is None:
        return "nothing (an empty value or an unset ${VAR})"
    if isinstance(value, str):
        return "an empty string" if not value.strip() else repr(value)
    kind = {dict: "a mapping", list: "a list", bool: "a boolean"}.get(type(value))
    return kind or repr(value)


def _freeze(value: Any) -> Any:
    if isinstance(value, dict):
        return MappingProxyType({key: _freeze(item) for key, item in value.items()})
    if isinstance(value, list):
        return tuple(_freeze(item) for item in value)
    return value


def thaw(value: Any) -> Any:
    """A mutable deep copy of frozen options, as handed to a provider factory."""
    if isinstance(value, Mapping):
        return {key: thaw(item) for key, item in value.items()}
    if isinstance(value, tuple):
        return [thaw(item) for item in value]
    return value
