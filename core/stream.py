"""The gateway to Stream: the only module of the server that talks to Stream.

Everything else in the server speaks in plain Python values and catches one exception,
StreamError. (The sandbox's chat page and the test fixture use stream_chat too: they play
Stream's users, and must not share the server's code.)

Set-up and reads go through the SDK. The three writes every reply makes (send a message,
update it, send an indicator event) go through slashbots.http_client with the SDK's own
credentials: at hundreds of replies a second the SDK and aiohttp were most of the server's
CPU (benchmarks/profiles.md). Both go through the proxy that HTTPS_PROXY or HTTP_PROXY
names for Stream's URL, unless NO_PROXY covers it (slashbots.proxies).
"""

from __future__ import annotations

import asyncio
import json
import os
import ssl
import time
from typing import Any, Mapping
from urllib.parse import quote

import aiohttp
from stream_chat import StreamChatAsync
from stream_chat.base.exceptions import StreamAPIException

from slashbots.http_client import HTTPClient
from slashbots.metrics import Metrics
from slashbots.provider import ChatMessage
from slashbots.proxies import Proxy, proxy_for

DEFAULT_BASE_URL = "https://chat.stream-io-api.com"


class StreamError(Exception):
    """A call to Stream failed: an HTTP error (``status``) or no answer at all (``status`` 0)."""

    def __init__(self, message: str, status: int = 0, code: int | None = None, retry_at: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.retry_at = retry_at  # wall-clock time Stream said to come back (X-RateLimit-Reset)

    @property
    def retryable(self) -> bool:
        return self.status == 0 or self.status == 429 or self.status >= 500

    @property
    def already_exists(self) -> bool:
        """Stream refused to create something (a message with our id, a command) that exists already."""
        return self.status == 400 and "already exists" in str(self)


class _Client(StreamChatAsync):
    """The SDK's client, through ``proxy``; errors keep the response headers (for X-RateLimit-Reset)."""

    def __init__(self, api_key: str, api_secret: str, *, timeout: float, base_url: str, proxy: Proxy | None) -> None:
        super().__init__(api_key, api_secret, timeout=timeout, base_url=base_url)
        # The SDK's own session leaves out the proxy (it has no trust_env). This one is the same with the
        # proxy, resolved once: aiohttp's trust_env would look it up in a thread on every request, and add
        # ~/.netrc credentials that clash with the SDK's Authorization header. The SDK's session is unused.
        self._unused_session = self.session
        self.set_http_session(aiohttp.ClientSession(
            base_url=self.base_url,
            # The trust store as the writer reads it, SSL_CERT_FILE included (aiohttp's default is read at import).
            connector=aiohttp.TCPConnector(keepalive_timeout=59.0, ssl=ssl.create_default_context()),
            proxy=proxy.url_with_credentials if proxy else None,
        ))

    async def close(self) -> None:
        await self._unused_session.close()
        await super().close()

    async def _parse_response(self, response: aiohttp.ClientResponse) -> Any:
        try:
            return await super()._parse_response(response)
        except StreamAPIException as exc:
            exc.headers = dict(response.headers)  # type: ignore[attr-defined]
            raise


class StreamGateway:
    """Calls Stream's REST API as the app (server-side, signed with the API secret)."""

    def __init__(self, api_key: str, api_secret: str, base_url: str | None = None, timeout: float = 6.0,
                 metrics: Metrics | None = None) -> None:
        self.metrics = metrics
        self._key = api_key
        self._secret = api_secret
        # As the SDK would choose it, but known now: the proxy depends on it.
        self.base_url = base_url or os.environ.get("STREAM_CHAT_URL") or DEFAULT_BASE_URL
        self.proxy = proxy_for(self.base_url)  # raises UnsupportedProxy for one we cannot speak to
        self._timeout = timeout
        self._client: _Client | None = None
        self._writer: HTTPClient | None = None
        self._query = f"?api_key={quote(api_key, safe='')}"

    @property
    def client(self) -> _Client:
        # The SDK opens an aiohttp session in its constructor, which needs a running loop.
        if self._client is None:
            self._client = _Client(self._key, self._secret, timeout=self._timeout, base_url=self.base_url,
                                   proxy=self.proxy)
        return self._client

    @property
    def writer(self) -> HTTPClient:
        if self._writer is None:
            client = self.client
            self._writer = HTTPClient(
                self.base_url,
                {"Authorization": client.auth_token, "stream-auth-type": "jwt", "X-Stream-Client": "slashbots"},
                timeout=self._timeout,
                proxy=self.proxy,
            )
        return self._writer

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None
        if self._writer is not None:
            await self._writer.close()
            self._writer = None

    async def _call(self, operation: str, what: str, coroutine: Any) -> Any:
        """Await one SDK call; ``operation`` labels the metrics, ``what`` the error message."""
        status = 0
        try:
            response = await coroutine
            status = 200
            return response
        except StreamAPIException as exc:
            status = exc.status_code
            raise _error(what, exc.status_code, exc.response_text, getattr(exc, "headers", None) or {}) from None
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            raise self._unreachable(what, exc) from None
        finally:
            if self.metrics is not None:
                self.metrics.stream_calls.labels(operation, str(status)).inc()

    async def _write(self, operation: str, what: str, method: str, path: str, payload: dict[str, Any] | None,
                     query: str = "") -> None:
        """One reply write, straight over HTTP; errors and metrics as ``_call``'s. The answer on
        success is not read: nothing needs it, and decoding a whole message is a cost per write."""
        writer = self.writer
        status = 0
        try:
            body = b"" if payload is None else json.dumps(payload).encode()
            response = await writer.request(method, path + self._query + query, body)
            status = response.status
        except (asyncio.TimeoutError, OSError) as exc:
            raise self._unreachable(what, exc) from None
        finally:
            if self.metrics is not None:
                self.metrics.stream_calls.labels(operation, str(status)).inc()
        if status >= 300:
            raise _error(what, status, response.body.decode("utf-8", "replace"), response.headers)

    def _unreachable(self, what: str, exc: BaseException) -> StreamError:
        reason = type(exc).__name__ if isinstance(exc, asyncio.TimeoutError) else str(exc) or type(exc).__name__
        if self.proxy is None:
            return StreamError(f"{what}: could not reach Stream at {self.base_url} ({reason})")
        # aiohttp's errors may spell out the proxy URL it was given, password and all.
        return StreamError(self.proxy.hide(
            f"{what}: could not reach Stream at {self.base_url} through the proxy at {self.proxy} ({reason})"
        ))

    # -- set-up: users, commands, channel types, the handler URL ---------------------------------

    async def upsert_users(self, users: list[dict[str, Any]]) -> None:
        await self._call("UpsertUsers", "upsert bot users", self.client.upsert_users(users))

    async def list_commands(self) -> dict[str, dict[str, Any]]:
        response = await self._call("ListCommands", "list commands", self.client.list_commands())
        return {command["name"]: command for command in response.get("commands") or []}

    async def create_command(self, name: str, description: str, args: str, set_name: str) -> None:
        command = {"name": name, "description": description, "args": args, "set": set_name}
        await self._call("CreateCommand", f"create command /{name}", self.client.create_command(command))

    async def update_command(self, name: str, description: str, args: str, set_name: str) -> None:
        await self._call(
            "UpdateCommand", f"update command /{name}",
            self.client.update_command(name, description=description, args=args, set=set_name),
        )

    async def delete_command(self, name: str) -> None:
        await self._call("DeleteCommand", f"delete command /{name}", self.client.delete_command(name))

    async def list_channel_types(self) -> list[str]:
        response = await self._call("ListChannelTypes", "list channel types", self.client.list_channel_types())
        return sorted(response.get("channel_types") or {})

    async def channel_type(self, channel_type: str) -> tuple[list[str], int | None]:
        """The names of the commands enabled on ``channel_type``, and its longest allowed message."""
        response = await self._call("GetChannelType", f"read channel type '{channel_type}'", self.client.get_channel_type(channel_type))
        commands = [item["name"] if isinstance(item, dict) else item for item in response.get("commands") or []]
        longest = response.get("max_message_length")
        return commands, longest if isinstance(longest, int) and longest > 0 else None

    async def set_channel_type_commands(self, channel_type: str, commands: list[str]) -> None:
        await self._call(
            "UpdateChannelType", f"update channel type '{channel_type}'",
            self.client.update_channel_type(channel_type, commands=commands),
        )

    async def handler_url(self) -> str:
        response = await self._call("GetApp", "read app settings", self.client.get_app_settings())
        return (response.get("app") or {}).get("custom_action_handler_url") or ""

    async def event_hooks(self) -> list[dict[str, Any]]:
        response = await self._call("GetApp", "read app settings", self.client.get_app_settings())
        return list((response.get("app") or {}).get("event_hooks") or [])

    async def set_event_hooks(self, hooks: list[dict[str, Any]]) -> None:
        """Replace the app's event hooks with ``hooks`` (Stream deletes any left out)."""
        await self._call("UpdateApp", "set the event hooks", self.client.update_app_settings(event_hooks=hooks))

    async def add_members(self, cid: str, user_ids: list[str]) -> None:
        """Make users members of an existing channel (adding a member again changes nothing)."""
        channel_type, _, channel_id = cid.partition(":")
        await self._call("UpdateChannel", f"add members to {cid}",
                         self.client.channel(channel_type, channel_id).add_members(user_ids))

    async def set_handler_url(self, url: str) -> None:
        await self._call("UpdateApp", "set the command handler URL", self.client.update_app_settings(custom_action_handler_url=url))

    # -- replies ------------------------------------------------------------------------------------

    async def send_message(self, cid: str, user_id: str, fields: dict[str, Any]) -> None:
        payload = {"message": {**fields, "user": {"id": user_id}}}
        await self._write("SendMessage", "send a message", "POST", f"{_channel_path(cid)}/message", payload)

    async def update_message(self, message_id: str, user_id: str, fields: dict[str, Any]) -> None:
        payload = {"set": fields, "user": {"id": user_id}}
        await self._write("UpdateMessagePartial", "update a message", "PUT", f"/messages/{quote(message_id, safe='')}", payload)

    async def delete_message(self, message_id: str) -> None:
        """Remove a message for good (hard delete): a leftover of an earlier run of the same reply."""
        await self._write("DeleteMessage", "delete a message", "DELETE",
                          f"/messages/{quote(message_id, safe='')}", None, query="&hard=true")

    async def send_event(self, cid: str, user_id: str, event: dict[str, Any]) -> None:
        payload = {"event": {**event, "user": {"id": user_id}}}
        await self._write("SendEvent", "send an event", "POST", f"{_channel_path(cid)}/event", payload)

    async def message(self, message_id: str) -> dict[str, Any] | None:
        """One message as Stream stores it, or None if there is none with that id."""
        try:
            response = await self._call("GetMessage", "read a message", self.client.get_message(message_id))
        except StreamError as exc:
            if exc.status == 404:
                return None
            raise
        return response.get("message")

    async def history(self, cid: str, parent_id: str | None, limit: int) -> list[ChatMessage]:
        """The last ``limit`` messages of the channel, or of the thread under ``parent_id``."""
        channel_type, _, channel_id = cid.partition(":")
        if parent_id:
            parent = await self._call("GetMessage", "read the thread", self.client.get_message(parent_id))
            replies = await self._call(
                "GetReplies", "read the thread", self.client.channel(channel_type, channel_id).get_replies(parent_id, limit=limit)
            )
            messages = [parent["message"], *replies.get("messages", [])]
        else:
            state = await self._call(
                "QueryChannel", "read the channel",
                self.client.channel(channel_type, channel_id).query(messages={"limit": limit}, watch=False, presence=False),
            )
            messages = state.get("messages", [])
        return [chat_message(message) for message in messages[-limit:] if message.get("type") != "deleted"]


def chat_message(message: dict[str, Any]) -> ChatMessage:
    """A message as Stream stores it, as a provider sees it."""
    return ChatMessage(
        id=message.get("id", ""),
        user_id=(message.get("user") or {}).get("id", ""),
        text=message.get("text") or "",
        command=message.get("command") or None,
        args=message.get("args") or "",
        created_at=message.get("created_at") or "",
        mentioned_users=tuple(user["id"] if isinstance(user, dict) else user
                              for user in message.get("mentioned_users") or ()),
        answer_to=message.get("answer_to") or None,
    )


def _channel_path(cid: str) -> str:
    channel_type, _, channel_id = cid.partition(":")
    return f"/channels/{quote(channel_type, safe='')}/{quote(channel_id, safe='!')}"


def _error(what: str, status: int, text: str, headers: Mapping[str, str]) -> StreamError:
    """Stream's error answer as a StreamError: its message and code, and when to come back."""
    if status == 407:  # the proxy's answer to a plain-HTTP request, not Stream's
        return StreamError(f"{what}: the proxy refused the request (HTTP 407): check the credentials in HTTP_PROXY",
                           status=status)
    try:
        parsed = json.loads(text)
    except ValueError:
        parsed = None
    parsed = parsed if isinstance(parsed, dict) else {}
    detail = parsed.get("message") or text[:200] or "no details"
    headers = {key.lower(): value for key, value in headers.items()}
    retry_at = None
    reset = headers.get("x-ratelimit-reset", "").split(",")[0].strip()
    if reset.isdigit():
        retry_at = float(reset)
    elif status == 429:
        retry_at = time.time() + 1.0
    code = parsed.get("code")
    return StreamError(
        f"{what}: Stream answered {status}: {detail}",
        status=status,
        code=code if isinstance(code, int) else None,
        retry_at=retry_at,
    )


def describe_error(exc: StreamError) -> str:
    """A start-up message an operator can act on."""
    if exc.status in (401, 403):
        return f"{exc} — check STREAM_API_KEY and STREAM_API_SECRET (they must belong to the same Stream app)."
    return str(exc)

