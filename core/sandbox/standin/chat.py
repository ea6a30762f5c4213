"""The conversations a Stream app holds: users, channels and their members, messages, events.

Stream's rules live here: the 5,000-character limit (per channel type), messages that only
their sender sees (a command hook's `error`/`ephemeral` answer), thread replies of type
`reply` that show in the channel only with `show_in_channel`, fields only Stream may set.
Every change is handed to `emit` as the event Stream would send about it.
"""

from __future__ import annotations

import hashlib
import html
import re
import threading
import uuid
from typing import Any, Awaitable, Callable, Iterable

from slashbots.sandbox.standin.app_config import AppConfig
from slashbots.sandbox.standin.errors import bad_input, not_found
from slashbots.sandbox.standin.values import Json, copy_json, now

# Message fields Stream computes itself: clients, hooks and updates cannot set them.
SERVER_OWNED = {
    "id", "cid", "user", "created_at", "updated_at", "html", "command", "args", "parent_id",
    "reply_count", "latest_reactions", "own_reactions", "reaction_counts", "reaction_scores",
    "mentioned_users", "deleted_at", "shadowed", "pinned_at", "pinned_by", "thread_participants",
}
# What a command-hook answer may rewrite ("any non-custom field not listed is ignored").
HOOK_REWRITABLE = {"text", "attachments", "type", "show_in_channel", "silent", "mml", "i18n"}
# Every field Stream knows; anything else on a message is a custom field.
KNOWN_FIELDS = SERVER_OWNED | HOOK_REWRITABLE | {"pinned", "pin_expires", "quoted_message_id", "restricted_visibility"}
MAX_MENTIONS = 25
_COMMAND = re.compile(r"/(\S+)\s*(.*)", re.DOTALL)  # "/name args" at the start of a message's text

CommandHook = Callable[[Json, Json], Awaitable[Json]]  # (message, user) -> the message as the hook left it
Emit = Callable[[Json], None]


def render_html(text: str) -> str:
    """Stream renders markdown to `html`; plain paragraphs are close enough here."""
    return f"<p>{html.escape(text)}</p>\n" if text else ""


def _message_event(event_type: str, message: Json, user: Json) -> Json:
    """The event Stream sends about a message (message.new, message.updated), minus `members`,
    which only event hooks are sent (see event_hooks.py)."""
    channel_type, _, channel_id = message["cid"].partition(":")
    return {"type": event_type, "cid": message["cid"], "channel_type": channel_type, "channel_id": channel_id,
            "message_id": message["id"], "message": message, "user": user, "created_at": now()}


def oldest_first(messages: Iterable[Json]) -> list[Json]:
    """By created_at, as Stream orders them: a command message is stamped when it arrives,
    before its hook runs, so a bot reply posted during the hook still sorts after it."""
    return sorted(messages, key=lambda m: m["created_at"])


class Chat:
    """Users, channels, messages and events, changed under `lock` (shared with readers in other
    threads). Messages and events are never changed in place once stored: a change stores a new
    dict, so records and answers share them freely and copies are made only where they leave."""

    def __init__(self, config: AppConfig, lock: threading.RLock, *, command_hook: CommandHook, emit: Emit) -> None:
        self._config = config
        self._lock = lock
        self._command_hook = command_hook
        self._emit = emit
        self.users: dict[str, Json] = {}
        self.channels: dict[str, Json] = {}
        self.members: dict[str, list[str]] = {}
        self.messages: dict[str, Json] = {}  # insertion order is creation order
        self.ephemeral: dict[str, list[Json]] = {}
        self.events: list[Json] = []  # sent through the event endpoint

    # ---- users -------------------------------------------------------------------------

    def upsert_users(self, body: Json) -> Json:
        users = body.get("users")
        if not isinstance(users, dict) or not all(isinstance(u, dict) for u in users.values()):
            raise bad_input("users must be a map of user id to user object")
        stored = {}
        for user_id, data in users.items():
            if data.get("id", user_id) != user_id:
                raise bad_input(f"user id {data.get('id')} does not match its key {user_id}")
            stored[user_id] = self._store_user(user_id, data)
        return {"users": copy_json(stored)}

    def _store_user(self, user_id: str, data: Json) -> Json:
        """Upsert replaces the user's data but keeps created_at, as Stream does."""
        stamp = now()
        previous = self.users.get(user_id, {})
        user = {"role": "user", "banned": False, "online": False, **data, "id": user_id,
                "created_at": previous.get("created_at", stamp), "updated_at": stamp}
        with self._lock:
            self.users[user_id] = user
        return user

    def _acting_user(self, payload: Json, *, required: bool = True) -> Json | None:
        """The user a server-side call acts as ({"user": {"id"}} or "user_id").
        Unknown ids are created on the fly (a guess: Stream may insist on an upsert first)."""
        ref = payload.get("user") or ({"id": payload["user_id"]} if payload.get("user_id") else None)
        if not isinstance(ref, dict) or not ref.get("id"):
            if required:
                raise bad_input("either user or user_id must be provided when using server side auth")
            return None
        return self.users.get(ref["id"]) or self._store_user(ref["id"], {})

    # ---- channels ----------------------------------------------------------------------

    def _ensure_channel(
        self, channel_type: str, channel_id: str, created_by: Json | None, data: Json | None = None
    ) -> Json:
        self._config.channel_type(channel_type)
        cid = f"{channel_type}:{channel_id}"
        if cid not in self.channels:
            if created_by is None:
                raise bad_input(
                    "either data.created_by or data.created_by_id must be provided when using server side auth"
                )
            stamp = now()
            extra = {k: v for k, v in (data or {}).items() if k not in ("members", "created_by", "created_by_id")}
            channel = {**extra, "id": channel_id, "type": channel_type, "cid": cid, "created_by": created_by,
                       "frozen": False, "disabled": False, "created_at": stamp, "updated_at": stamp}
            with self._lock:
                self.channels[cid] = channel
                self.members[cid] = []
        return self.channels[cid]

    def _add_members(self, cid: str, members: Any) -> None:
        ids = [m if isinstance(m, str) else m.get("user_id") for m in members or []]
        for user_id in ids:
            if user_id and user_id not in self.members[cid]:
                if user_id not in self.users:
                    self._store_user(user_id, {})
                with self._lock:
                    self.members[cid].append(user_id)

    def query_channel(self, channel_type: str, channel_id: str | None, body: Json) -> Json:
        """Get or create a channel; without an id, the distinct channel of `data.members`."""
        data = body.get("data") or {}
        if channel_id is None:  # a distinct channel: its id follows from its members
            members = sorted(m if isinstance(m, str) else m.get("user_id", "") for m in data.get("members") or [])
            if not members:
                raise bad_input("a channel without an id needs data.members")
            channel_id = "!members-" + hashlib.sha1(",".join(members).encode()).hexdigest()[:20]
        limit = (body.get("messages") or {}).get("limit", 25)
        if not isinstance(limit, int) or not 0 <= limit <= 300:
            raise bad_input("messages.limit must be between 0 and 300")
        creator = data.get("created_by") or ({"id": data["created_by_id"]} if data.get("created_by_id") else None)
        created_by = self._acting_user({"user": creator}, required=False)
        channel = self._ensure_channel(channel_type, channel_id, created_by, data)
        self._add_members(channel["cid"], data.get("members"))
        visible = oldest_first(  # thread replies show in the channel only when sent with show_in_channel
            m for m in self.messages.values()
            if m["cid"] == channel["cid"] and (not m.get("parent_id") or m.get("show_in_channel"))
        )
        return {
            "channel": self._channel_view(channel),
            "messages": copy_json(visible[len(visible) - limit:] if limit else []),
            "members": self.member_views(channel["cid"], len(self.members[channel["cid"]])),
            "read": [], "pinned_messages": [], "watcher_count": 0,
        }

    def update_channel(self, channel_type: str, channel_id: str, body: Json) -> Json:
        """POST /channels/{type}/{id}: here, adding and removing members (the SDK's add_members and
        remove_members; adding a member twice changes nothing, as in Stream). The channel must exist."""
        cid = f"{channel_type}:{channel_id}"
        self._config.channel_type(channel_type)
        if cid not in self.channels:
            raise not_found(f"channel {cid} doesn't exist")
        added, removed = body.get("add_members") or [], body.get("remove_members") or []
        if not isinstance(added, list) or not isinstance(removed, list):
            raise bad_input("add_members and remove_members must be lists")
        before = list(self.members[cid])
        self._add_members(cid, added)
        gone = {m if isinstance(m, str) else m.get("user_id") for m in removed}
        with self._lock:
            self.members[cid] = [user_id for user_id in self.members[cid] if user_id not in gone]
        for user_id in self.members[cid]:
            if user_id not in before:
                self._emit({"type": "member.added", "cid": cid, "channel_type": channel_type, "channel_id": channel_id,
                            "member": self._member_view(user_id), "user": copy_json(self.users[user_id]),
                            "created_at": now()})
        return {"channel": self._channel_view(self.channels[cid]),
                "members": self.member_views(cid, len(self.members[cid]))}

    def _channel_view(self, channel: Json) -> Json:
        view = copy_json(channel)
        view["member_count"] = len(self.members[channel["cid"]])
        view["config"] = self._config.channel_type_view(self._config.channel_types[channel["type"]], expand=True)
        return view

    def member_views(self, cid: str, limit: int) -> list[Json]:
        """The channel's first `limit` members, as Stream lists them in channel state and events."""
        return [self._member_view(user_id) for user_id in self.members.get(cid, [])[:limit]]

    def _member_view(self, user_id: str) -> Json:
        user = self.users[user_id]
        return {"user_id": user_id, "user": copy_json(user), "channel_role": "channel_member",
                "created_at": user["created_at"], "updated_at": user["updated_at"]}

    # ---- messages ----------------------------------------------------------------------

    def _check_text(self, text: Any, channel_type: str) -> str:
        if not isinstance(text, str):
            raise bad_input("message.text must be a string")
        limit = self._config.max_message_length(channel_type)
        if len(text) > limit:
            raise bad_input(f"message is too long: {len(text)} characters, "
                            f"max_message_length of channel type {channel_type} is {limit}")
        return text

    def _stored_message(self, message_id: str) -> Json:
        if message_id not in self.messages:
            raise not_found(f"message with id {message_id} doesn't exist")
        return self.messages[message_id]

    async def send_message(self, channel_type: str, channel_id: str, body: Json) -> Json:
        incoming = body.get("message")
        if not isinstance(incoming, dict):
            raise bad_input("message is a required field")
        self._config.channel_type(channel_type)
        requested_type = incoming.get("type") or "regular"
        if requested_type not in ("regular", "system"):  # ephemeral/error only come from command hooks
            raise bad_input(f"message.type must be one of: regular system, got {requested_type}")
        text = self._check_text(incoming.get("text", ""), channel_type)
        message_id = incoming.get("id") or str(uuid.uuid4())
        if message_id in self.messages:
            raise bad_input(f"a message with ID {message_id} already exists")
        cid = f"{channel_type}:{channel_id}"
        parent_id = incoming.get("parent_id")
        if parent_id and (parent_id not in self.messages or self.messages[parent_id]["cid"] != cid):
            raise bad_input(f"parent message {parent_id} doesn't exist in channel {cid}")
        user = self._acting_user(incoming)
        assert user is not None
        # Stream wants channels created first; this stand-in creates them on first message.
        self._ensure_channel(channel_type, channel_id, created_by=user)

        message = self._new_message(incoming, message_id, cid, user, requested_type, text)
        # `command` is set only for a command enabled on the channel type.
        command = message.get("command")
        if command in self._config.commands and self._config.settings["custom_action_handler_url"]:
            message = await self._command_hook(message, user)

        if message["type"] in ("error", "ephemeral"):  # seen by the sender only, never stored
            with self._lock:
                self.ephemeral.setdefault(user["id"], []).append(copy_json(message))
            self._emit({**_message_event("message.new", message, user), "only_for": user["id"]})
            return {"message": message}
        with self._lock:
            if message_id in self.messages:  # the same id sent twice while the hook ran
                raise bad_input(f"a message with ID {message_id} already exists")
            self.messages[message_id] = message
            if parent_id:
                parent = self.messages[parent_id]
                self.messages[parent_id] = {**parent, "reply_count": parent["reply_count"] + 1}
        self._emit(_message_event("message.new", message, user))
        return {"message": message}

    def _new_message(self, incoming: Json, message_id: str, cid: str, user: Json, message_type: str, text: str) -> Json:
        """A message as Stream stores it: client fields (custom ones at top level) plus server fields."""
        stamp = now()
        mentioned = self._mentioned_ids(incoming.get("mentioned_users"))
        message = {k: v for k, v in incoming.items() if k not in SERVER_OWNED and k != "user_id"}
        message.update({
            "id": message_id, "text": text, "html": render_html(text), "type": message_type, "user": user, "cid": cid,
            "attachments": incoming.get("attachments") or [], "silent": bool(incoming.get("silent", False)),
            # Sent as ids, stored as the users (an id nobody upserted stays a bare {"id"}: a guess).
            "mentioned_users": [self.users.get(u) or {"id": u} for u in mentioned],
            "latest_reactions": [], "own_reactions": [], "reaction_counts": {}, "reaction_scores": {},
            "reply_count": 0, "pinned": False, "shadowed": False, "created_at": stamp, "updated_at": stamp,
        })
        if incoming.get("parent_id"):
            message["parent_id"] = incoming["parent_id"]
            message["show_in_channel"] = bool(incoming.get("show_in_channel", False))
            if message_type == "regular":
                message["type"] = "reply"
        parsed = _COMMAND.match(text)
        if parsed and parsed.group(1) in self._config.enabled_commands(cid.split(":", 1)[0]):
            message["command"], message["args"] = parsed.group(1), parsed.group(2).strip()
        return message

    @staticmethod
    def _mentioned_ids(mentioned: Any) -> list[str]:
        """`mentioned_users` as sent: user ids (or user objects), at most 25 (MessageRequest)."""
        if mentioned is None:
            return []
        if not isinstance(mentioned, list):
            raise bad_input("mentioned_users must be a list of user ids")
        if len(mentioned) > MAX_MENTIONS:
            raise bad_input(f"mentioned_users can have at most {MAX_MENTIONS} users")
        ids: list[str] = []
        for entry in mentioned:
            user_id = entry.get("id") if isinstance(entry, dict) else entry
            if not isinstance(user_id, str) or not user_id:
                raise bad_input("mentioned_users must be a list of user ids")
            if user_id not in ids:  # each user once
                ids.append(user_id)
        return ids

    def _save_update(self, message: Json, user: Json | None) -> Json:
        message["updated_at"] = now()
        message["html"] = render_html(message.get("text", ""))
        with self._lock:
            self.messages[message["id"]] = message
        self._emit(_message_event("message.updated", message, user or message["user"]))
        return {"message": message}

    def get_message(self, message_id: str) -> Json:
        return {"message": copy_json(self._stored_message(message_id))}

    def update_message_partial(self, message_id: str, body: Json) -> Json:
        current = self._stored_message(message_id)
        to_set, to_unset = body.get("set") or {}, body.get("unset") or []
        if not isinstance(to_set, dict) or not isinstance(to_unset, list):
            raise bad_input("set must be an object and unset a list of field names")
        frozen = (set(to_set) | set(to_unset)) & (SERVER_OWNED | {"type"})
        if frozen:
            raise bad_input(f"fields cannot be updated: {sorted(frozen)}")
        if "text" in to_set:
            self._check_text(to_set["text"], current["cid"].split(":", 1)[0])
        user = self._acting_user(body, required=False)
        updated = {**current, **to_set}
        for key in to_unset:
            updated.pop(key, None)
        updated.setdefault("text", "")
        updated.setdefault("attachments", [])
        return self._save_update(updated, user)

    def update_message(self, message_id: str, body: Json) -> Json:
        """A full update: client fields are replaced as a whole (absent custom fields go away)."""
        current = self._stored_message(message_id)
        incoming = body.get("message")
        if not isinstance(incoming, dict):
            raise bad_input("message is a required field")
        text = self._check_text(incoming.get("text", ""), current["cid"].split(":", 1)[0])
        user = self._acting_user(incoming, required=False)
        kept = {k: v for k, v in current.items() if k in SERVER_OWNED or k == "type"}
        client_fields = {k: v for k, v in incoming.items() if k not in SERVER_OWNED and k != "type"}
        updated = copy_json({**kept, **client_fields, "text": text})
        updated.setdefault("attachments", [])
        return self._save_update(updated, user)

    def delete_message(self, message_id: str, query: dict[str, str]) -> Json:
        """Soft delete (the default): the message stays, as type `deleted`, with `deleted_at`. Hard
        delete (`hard=true`): it is gone, and a reply no longer counts in its parent's reply_count.
        What a soft-deleted message keeps of its text is not documented: here it keeps it."""
        current = self._stored_message(message_id)
        hard = query.get("hard", "").lower() in ("true", "1")
        stamp = now()
        deleted = {**current, "type": "deleted", "deleted_at": stamp, "updated_at": stamp}
        with self._lock:
            if hard:
                del self.messages[message_id]
                parent = self.messages.get(current.get("parent_id") or "")
                if parent is not None:
                    self.messages[parent["id"]] = {**parent, "reply_count": max(parent["reply_count"] - 1, 0)}
            else:
                self.messages[message_id] = deleted
        event = _message_event("message.deleted", deleted, current["user"])
        self._emit({**event, "hard_delete": True} if hard else event)
        return {"message": copy_json(deleted)}

    def get_replies(self, parent_id: str, query: dict[str, str]) -> Json:
        parent = self._stored_message(parent_id)
        try:
            limit = int(query.get("limit", 10))  # Stream's default here is a guess
        except ValueError:
            raise bad_input("limit must be an integer")
        if not 0 <= limit <= 300:
            raise bad_input("limit must be between 0 and 300")
        replies = oldest_first(m for m in self.messages.values() if m.get("parent_id") == parent["id"])
        ids = [m["id"] for m in replies]
        if query.get("id_lt"):  # paging backwards: only replies older than that one
            replies = replies[: ids.index(query["id_lt"])] if query["id_lt"] in ids else []
        elif query.get("id_lte"):  # ... or than that one and itself
            replies = replies[: ids.index(query["id_lte"]) + 1] if query["id_lte"] in ids else []
        return {"messages": copy_json(replies[len(replies) - limit:] if limit else [])}

    # ---- events ------------------------------------------------------------------------

    def send_event(self, channel_type: str, channel_id: str, body: Json) -> Json:
        incoming = body.get("event")
        if not isinstance(incoming, dict) or not isinstance(incoming.get("type"), str) or not incoming["type"]:
            raise bad_input("event.type is a required field")
        user = self._acting_user(incoming)
        channel = self._ensure_channel(channel_type, channel_id, created_by=user)
        event = {**incoming, "user": user, "cid": channel["cid"], "channel_type": channel_type,
                 "channel_id": channel_id, "created_at": now()}
        with self._lock:
            self.events.append(event)
        self._emit(event)
        return {"event": event}
