"""The custom-command webhook: Stream calls the app's one handler URL inside the send-message
call, with a 1 s budget, and applies the answer to the user's message.

Any failure (timeout, non-2xx, an answer that is not JSON) saves the message as it was sent.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

from slashbots.sandbox.standin.app_config import AppConfig
from slashbots.sandbox.standin.chat import HOOK_REWRITABLE, KNOWN_FIELDS, render_html
from slashbots.sandbox.standin.hook_requests import hook_client, hook_request
from slashbots.sandbox.standin.recorder import Recorder
from slashbots.sandbox.standin.values import Json, copy_json


class CommandHook:
    """Called with (message, user) for a custom command; returns the message as the hook left it."""

    def __init__(self, config: AppConfig, recorder: Recorder, *, api_key: str, api_secret: str, timeout: float) -> None:
        self._config = config
        self._recorder = recorder
        self._api_key = api_key
        self._api_secret = api_secret
        self.timeout = timeout

    async def __call__(self, message: Json, user: Json) -> Json:
        settings = self._config.settings
        url = settings["custom_action_handler_url"].replace("{type}", message["command"])
        request = hook_request({"message": message, "user": user}, api_key=self._api_key,
                               api_secret=self._api_secret, compress=bool(settings.get("enable_hook_payload_compression")))
        record: Json = {"url": url, "headers": request.headers, "payload": copy_json({"message": message, "user": user}),
                        "compressed": request.compressed, "status": None, "response": None, "error": None,
                        "elapsed": None, "outcome": "unchanged"}
        answer: Any = None
        started = time.perf_counter()
        try:
            async with hook_client() as client:
                sending = client.post(url, content=request.content, headers=request.headers, timeout=self.timeout)
                response = await asyncio.wait_for(sending, self.timeout)  # a budget for the whole call
            record["status"], record["response_text"] = response.status_code, response.text
            if response.is_success:
                answer = record["response"] = response.json()
        except (asyncio.TimeoutError, httpx.TimeoutException):
            record["error"] = "timeout"
        except httpx.HTTPError as exc:
            record["error"] = f"{type(exc).__name__}: {exc}"
        except ValueError:
            record["error"] = "response is not JSON"
        record["elapsed"] = time.perf_counter() - started
        applied, record["outcome"] = apply_answer(message, answer)
        self._recorder.hook_call(record)
        return applied


def apply_answer(message: Json, answer: Any) -> tuple[Json, str]:
    """The answer may rewrite text, attachments, type and custom fields; the author stays.
    `{"message": null}` on a first call is undocumented: treated as "no change" here."""
    if not isinstance(answer, dict) or not isinstance(answer.get("message"), dict):
        return message, "unchanged"
    applied = copy_json(message)
    for key, value in answer["message"].items():
        if key == "type":
            if value in ("ephemeral", "error") or (value == "regular" and not message.get("parent_id")):
                applied["type"] = value
        elif key in HOOK_REWRITABLE or key not in KNOWN_FIELDS:
            applied[key] = value
    if applied.get("text") != message.get("text"):
        applied["html"] = render_html(str(applied.get("text") or ""))
    if applied["type"] in ("ephemeral", "error"):
        return applied, applied["type"]
    return applied, "unchanged" if applied == message else "rewritten"
