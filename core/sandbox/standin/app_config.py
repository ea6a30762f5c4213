"""What a Stream app is configured with: its settings, its custom commands, its channel types.

Stream's rules live here: commands are app-global and work only on channel types whose
`commands` list names them; that list is replaced on update, never merged; a command still
enabled somewhere cannot be deleted; an app has at most 50 channel types; `event_hooks` is
replaced as a whole on update, so a hook left out of the new list is deleted.
"""

from __future__ import annotations

import threading
import uuid
from typing import Any
from urllib.parse import urlparse

from slashbots.sandbox.standin.errors import bad_input, not_found
from slashbots.sandbox.standin.values import Json, copy_json, now

# Stream's built-in commands, as it lists them in a channel's config.commands.
BUILTIN_COMMANDS: dict[str, Json] = {
    "giphy": {"name": "giphy", "description": "Post a random gif to the channel", "args": "[text]", "set": "fun_set"},
    "mute": {"name": "mute", "description": "Mute a user", "args": "[@username]", "set": "moderation_set"},
    "ban": {"name": "ban", "description": "Ban a user", "args": "[@username] [text]", "set": "moderation_set"},
    "unmute": {"name": "unmute", "description": "Unmute a user", "args": "[@username]", "set": "moderation_set"},
    "unban": {"name": "unban", "description": "Unban a user", "args": "[@username]", "set": "moderation_set"},
}
_MODERATION = ["mute", "unmute", "ban", "unban"]
# The built-in channel types and the commands they start with (Stream's exact defaults
# for team/commerce/gaming are not documented; these are plausible).
DEFAULT_CHANNEL_TYPE_COMMANDS: dict[str, list[str]] = {
    "messaging": ["giphy"],
    "team": ["giphy"],
    "livestream": ["giphy", *_MODERATION],
    "commerce": [],
    "gaming": ["giphy", *_MODERATION],
}
_CHANNEL_TYPE_SETTINGS: Json = {
    "typing_events": True, "read_events": True, "connect_events": True, "search": True,
    "reactions": True, "replies": True, "quotes": True, "mutes": True, "uploads": True,
    "url_enrichment": True, "custom_events": True, "push_notifications": True,
    "message_retention": "infinite", "max_message_length": 5000,
    "automod": "disabled", "automod_behavior": "flag", "blocklist_behavior": "flag",
}
MAX_CHANNEL_TYPES = 50  # "applications have a hard limit of 50 channel types"
_URL_SETTINGS = {"custom_action_handler_url", "before_message_send_hook_url", "webhook_url"}
HOOK_TYPES = {"webhook", "sqs", "sns", "pending_message"}  # stream-chat-js's HookType
_HOOK_STAMPS = {"created_at", "updated_at"}  # Stream's to set: ignored when a client sends them back


def is_url(value: str) -> bool:
    parsed = urlparse(value)
    return parsed.scheme in ("http", "https") and bool(parsed.netloc)


class AppConfig:
    """The app's settings, custom commands and channel types. Changes happen under `lock`,
    which the server thread shares with readers in other threads."""

    def __init__(self, lock: threading.RLock) -> None:
        self._lock = lock
        self.settings: Json = {
            "name": "slashbots-sandbox", "custom_action_handler_url": "", "enable_hook_payload_compression": False,
            "before_message_send_hook_url": "", "webhook_url": "", "event_hooks": [],
            "disable_auth_checks": False, "disable_permissions_checks": False, "suspended": False,
        }
        self.commands: dict[str, Json] = {}  # custom commands only
        self.channel_types: dict[str, Json] = {
            name: self._new_channel_type(name, commands) for name, commands in DEFAULT_CHANNEL_TYPE_COMMANDS.items()
        }

    # ---- app settings ------------------------------------------------------------------

    def get_app(self) -> Json:
        app = copy_json(self.settings)
        app["channel_configs"] = {n: self.channel_type_view(t, expand=True) for n, t in self.channel_types.items()}
        return {"app": app}

    def update_app(self, body: Json) -> Json:
        for key, value in body.items():
            if key in _URL_SETTINGS:
                if not isinstance(value, str) or (value and not is_url(value)):
                    raise bad_input(f"{key} must be a valid URL")
            elif key == "enable_hook_payload_compression" and not isinstance(value, bool):
                raise bad_input(f"{key} must be a boolean")
        if "event_hooks" in body:
            body = {**body, "event_hooks": self._event_hooks(body["event_hooks"])}
        with self._lock:
            self.settings.update(body)
        return {}

    @property
    def event_hooks(self) -> list[Json]:
        """The hooks as they stand. The list is replaced on update, never changed in place, so it
        may be read without the lock."""
        hooks: list[Json] = self.settings["event_hooks"]
        return hooks

    def _event_hooks(self, value: Any) -> list[Json]:
        """The list that replaces the app's hooks. A hook keeps its id (a new one gets one) and its
        created_at; updated_at moves when it changed. Fields this stand-in has no use for (SQS,
        SNS, product, timeout_ms, ...) are kept as given. Defaults are Go's zero values, as Stream
        is written in Go: not enabled, no custom events; no `event_types` means every event."""
        if not isinstance(value, list) or not all(isinstance(hook, dict) for hook in value):
            raise bad_input("event_hooks must be a list of hook objects")
        current = {hook["id"]: hook for hook in self.settings["event_hooks"]}
        stamp = now()
        hooks: list[Json] = []
        for given in value:
            hook = {key: item for key, item in given.items() if key not in _HOOK_STAMPS}
            if hook.get("hook_type") not in HOOK_TYPES:
                raise bad_input(f"event_hooks: hook_type must be one of {', '.join(sorted(HOOK_TYPES))}")
            url = hook.get("webhook_url")
            if hook["hook_type"] == "webhook" and not (isinstance(url, str) and is_url(url)):
                raise bad_input("event_hooks: a webhook hook needs a valid webhook_url")
            types = hook.get("event_types") or []
            if not isinstance(types, list) or not all(isinstance(name, str) for name in types):
                raise bad_input("event_hooks: event_types must be a list of event types")
            for flag in ("enabled", "should_send_custom_events"):
                if not isinstance(hook.get(flag, False), bool):
                    raise bad_input(f"event_hooks: {flag} must be a boolean")
            hook.update(id=hook.get("id") or str(uuid.uuid4()), event_types=types, enabled=hook.get("enabled", False),
                        should_send_custom_events=hook.get("should_send_custom_events", False))
            if any(hook["id"] == other["id"] for other in hooks):
                raise bad_input(f"event_hooks: hook id {hook['id']} is given twice")
            previous = current.get(hook["id"])
            unchanged = previous is not None and hook == {k: v for k, v in previous.items() if k not in _HOOK_STAMPS}
            hook["created_at"] = previous["created_at"] if previous else stamp
            hook["updated_at"] = previous["updated_at"] if unchanged and previous else stamp
            hooks.append(hook)
        return hooks

    # ---- commands ----------------------------------------------------------------------

    @staticmethod
    def _command_fields(body: Json, required: tuple[str, ...]) -> Json:
        for field in required:
            if not body.get(field):
                raise bad_input(f"{field} is a required field")
        fields = {k: body[k] for k in ("name", "description", "args", "set") if body.get(k) is not None}
        for key, value in fields.items():
            if not isinstance(value, str) or len(value) > 255:
                raise bad_input(f"{key} must be a string of at most 255 characters")
        return fields

    def create_command(self, body: Json) -> Json:
        fields = self._command_fields(body, ("name", "description"))
        name = fields["name"]
        # Whether a custom command may shadow a built-in is undocumented; refusing is the safe guess.
        if name in self.commands or name in BUILTIN_COMMANDS:
            raise bad_input(f"command {name} already exists")
        created = now()
        command = {"name": name, "description": fields["description"], "args": fields.get("args", ""),
                   "set": fields.get("set", ""), "created_at": created, "updated_at": created}
        with self._lock:
            self.commands[name] = command
        return {"command": copy_json(command)}

    def list_commands(self) -> Json:
        return {"commands": copy_json(list(self.commands.values()))}

    def _custom_command(self, name: str) -> Json:
        if name not in self.commands:
            raise not_found(f"command {name} doesn't exist")
        return self.commands[name]

    def get_command(self, name: str) -> Json:
        return copy_json(self._custom_command(name))

    def update_command(self, name: str, body: Json) -> Json:
        command = self._custom_command(name)
        fields = self._command_fields(body, ("description",))
        fields.pop("name", None)  # commands cannot be renamed
        with self._lock:
            command.update(fields, updated_at=now())
        return {"command": copy_json(command)}

    def delete_command(self, name: str) -> Json:
        self._custom_command(name)
        users = sorted(t["name"] for t in self.channel_types.values() if name in t["commands"])
        if users:
            raise bad_input(f"command {name} is still enabled on channel types {users}; remove it there first")
        with self._lock:
            del self.commands[name]
        return {"name": name}

    def expand_commands(self, names: list[str]) -> list[Json]:
        """Names -> full command objects, as Stream shows them in channel configs.
        "all" covers the built-ins (whether it also covers custom commands is undocumented:
        here it does not); a set name covers every command in that set."""
        every = {**BUILTIN_COMMANDS, **self.commands}
        picked: dict[str, Json] = {}
        for name in names:
            if name == "all":
                picked.update(BUILTIN_COMMANDS)
            elif name in every:
                picked[name] = every[name]
            else:
                picked.update({n: c for n, c in every.items() if c["set"] == name})
        return [{k: c[k] for k in ("name", "description", "args", "set")} for c in picked.values()]

    def enabled_commands(self, channel_type: str) -> dict[str, Json]:
        return {c["name"]: c for c in self.expand_commands(self.channel_types[channel_type]["commands"])}

    def _validate_command_names(self, names: Any) -> list[str]:
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise bad_input("commands must be a list of command names")
        sets = {c["set"] for c in [*BUILTIN_COMMANDS.values(), *self.commands.values()] if c["set"]}
        for name in names:
            if name != "all" and name not in BUILTIN_COMMANDS and name not in self.commands and name not in sets:
                raise bad_input(f"command {name} doesn't exist")
        return list(names)

    # ---- channel types -----------------------------------------------------------------

    @staticmethod
    def _new_channel_type(name: str, commands: list[str]) -> Json:
        created = now()
        settings = copy_json(_CHANNEL_TYPE_SETTINGS)
        return {"name": name, **settings, "commands": list(commands), "created_at": created, "updated_at": created}

    def channel_type(self, name: str) -> Json:
        if name not in self.channel_types:
            raise not_found(f"channel type {name} doesn't exist")
        return self.channel_types[name]

    def channel_type_view(self, channel_type: Json, *, expand: bool) -> Json:
        """GET answers carry full command objects; create/update answers carry names."""
        view = copy_json(channel_type)
        if expand:
            view["commands"] = self.expand_commands(channel_type["commands"])
        return view

    def max_message_length(self, channel_type: str) -> int:
        length: int = self.channel_types[channel_type]["max_message_length"]
        return length

    def set_max_message_length(self, channel_type: str, length: int) -> None:
        with self._lock:
            self.channel_types[channel_type]["max_message_length"] = length

    def _apply_channel_type_settings(self, channel_type: Json, body: Json) -> None:
        if "commands" in body:
            body = {**body, "commands": self._validate_command_names(body["commands"])}
        length = body.get("max_message_length", channel_type["max_message_length"])
        if not isinstance(length, int) or not 1 <= length <= 20000:
            raise bad_input("max_message_length must be an integer between 1 and 20000")
        with self._lock:
            channel_type.update({k: v for k, v in body.items() if k not in ("name", "created_at")}, updated_at=now())

    def create_channel_type(self, body: Json) -> Json:
        name = body.get("name")
        if not isinstance(name, str) or not name:
            raise bad_input("name is a required field")
        if name in self.channel_types:
            raise bad_input(f"channel type {name} already exists")
        if len(self.channel_types) >= MAX_CHANNEL_TYPES:
            raise bad_input(f"an app can have at most {MAX_CHANNEL_TYPES} channel types")
        channel_type = self._new_channel_type(name, [])
        self._apply_channel_type_settings(channel_type, body)
        with self._lock:
            self.channel_types[name] = channel_type
        return self.channel_type_view(channel_type, expand=False)

    def list_channel_types(self) -> Json:
        return {"channel_types": {n: self.channel_type_view(t, expand=True) for n, t in self.channel_types.items()}}

    def get_channel_type(self, name: str) -> Json:
        return self.channel_type_view(self.channel_type(name), expand=True)

    def update_channel_type(self, name: str, body: Json) -> Json:
        channel_type = self.channel_type(name)
        self._apply_channel_type_settings(channel_type, body)  # `commands` replaces, never merges
        return self.channel_type_view(channel_type, expand=False)
