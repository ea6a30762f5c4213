"""HTTP calls to OpenAI or an OpenAI-compatible server: moderation, the streamed chat, and retries.

Retries follow openai-python's policy, with two differences that matter in a chat: a
quota error (``insufficient_quota``, sent as 429) is never retried, and a server that asks
us to wait more than a minute is not waited for; the user is told instead. A stream that
breaks before any text was shown is retried like a failed request; once text is shown it
cannot be taken back, so a break then ends the answer with an explanation.

Every failure ends as an ``APIFailure`` worded by ``wording``; what reaches it (and the
``slashbots.chatgpt`` log) is redacted first, since a server's 401 message echoes part of the key.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import email.utils
import json
import logging
import random
import re
import time
from dataclasses import dataclass
from typing import Any, AsyncIterator, Mapping

import httpx

from slashbots.plugins.chatgpt import wording
from slashbots.plugins.chatgpt.completions import CompletionStream, StreamErrorEvent, Turn
from slashbots.plugins.chatgpt.failures import RETRYABLE_STATUSES, APIFailure, ErrorBody
from slashbots.plugins.chatgpt.options import Settings, is_openai_url
from slashbots.plugins.chatgpt.sse import SSEParser

log = logging.getLogger("slashbots.chatgpt")

MAX_SERVER_DELAY = 60.0  # seconds; a longer Retry-After is reported, not waited out
_KEY_PATTERN = re.compile(r"\bsk-[A-Za-z0-9_\-*.]{4,}")


@dataclass(frozen=True)
class Verdict:
    """The moderation result for one text: flagged or not, and the API's category keys."""

    flagged: bool
    categories: tuple[str, ...]


@dataclass(frozen=True)
class Endpoint:
    """One service as the user sees it: where it is, how we authenticate, how we name it."""

    url: str
    params: Mapping[str, str]
    headers: Mapping[str, str]
    service: str  # as named in messages: "OpenAI", "Azure OpenAI", "the model server"
    key_hint: str  # where the operator sets the key, for the "bad key" message


class OpenAIClient:
    """Moderation and streamed chat over one pooled ``httpx.AsyncClient``, opened on first use."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._http: httpx.AsyncClient | None = None
        # Ask for the token count at the end of each stream, until the server refuses the option
        # (some OpenAI-compatible servers do): then without it, for good, and usage is estimated.
        self.include_usage = True
        self.chat = _chat_endpoint(settings)
        self.moderation = _moderation_endpoint(settings)

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            s = self.settings
            # trust_env: HTTPS_PROXY, HTTP_PROXY, NO_PROXY (and lower-case names) and SSL_CERT_FILE, read
            # once, here, for the chat and the moderation calls alike. It is httpx's default, stated because
            # users behind an egress proxy rely on it (tests/test_outbound_proxy.py).
            self._http = httpx.AsyncClient(
                timeout=httpx.Timeout(s.read_timeout, connect=s.connect_timeout),
                headers={"User-Agent": "slashbots-chatgpt"},
                trust_env=True,
            )
        return self._http

    async def moderate(self, text: str) -> Verdict:
        """Ask the moderation endpoint about ``text``; raises ``APIFailure`` if it can't say."""
        try:
            return await self._moderate(text)
        except APIFailure as failure:
            raise self._moderation_failure(failure) from failure

    async def _moderate(self, text: str) -> Verdict:
        endpoint = self.moderation
        body = {"model": self.settings.moderation_model, "input": text}
        attempt = 0
        while True:
            try:
                response = await self._client().post(
                    endpoint.url, params=endpoint.params, headers=endpoint.headers, json=body
                )
                if response.is_success:
                    return _verdict(response, endpoint, self._secrets)
                delay = self._judge_status(endpoint, response, attempt)
            except httpx.RequestError as exc:
                delay = self._judge_transport(endpoint, exc, attempt)
            await asyncio.sleep(delay)
            attempt += 1

    async def stream_chat(self, messages: list[dict[str, Any]],
                          tools: list[dict[str, Any]] | None = None) -> AsyncIterator[str | Turn]:
        """Stream the answer to ``messages`` as text pieces, then one ``Turn``: the tool calls and usage.

        ``tools`` are offered to the model (none: the request has no ``tools``). Failures
        raise ``APIFailure``/``Refusal``.
        """
        endpoint = self.chat
        body = self._chat_body(messages, tools)
        attempt = 0
        while True:
            shown = False  # whether any text of this attempt reached the user
            try:
                async with self._client().stream(
                    "POST", endpoint.url, params=endpoint.params, headers=endpoint.headers, json=body
                ) as response:
                    if response.is_success:
                        stream = CompletionStream()
                        async with contextlib.aclosing(self._pieces(endpoint, response, stream)) as pieces:
                            async for piece in pieces:
                                shown = True
                                yield piece
                        if not stream.complete:
                            raise _StreamCutOff()
                        calls = stream.tool_calls.calls()
                        # With calls to make, the answer is still to come: no note on how this part ended.
                        note = "" if calls else self._finish(endpoint, stream, shown)
                        if note:
                            yield note
                        yield Turn(calls, stream.usage)
                        return
                    await response.aread()
                    if self.include_usage and _rejects_stream_options(response):
                        self.include_usage = False
                        log.warning("%s refuses stream_options; asking without it from now on, so this bot's "
                                    "token counts are estimated from the characters", endpoint.service)
                        body = self._chat_body(messages, tools)
                        continue
                    delay = self._judge_status(endpoint, response, attempt)
            except (httpx.RequestError, _StreamCutOff) as exc:
                if shown:
                    raise self._transport_failure(endpoint, exc, during_answer=True) from exc
                delay = self._judge_transport(endpoint, exc, attempt)
            await asyncio.sleep(delay)
            attempt += 1

    def _chat_body(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None) -> dict[str, Any]:
        s = self.settings
        body: dict[str, Any] = {
            "model": s.model,
            "messages": messages,
            "stream": True,
        }
        if self.include_usage:
            body["stream_options"] = {"include_usage": True}
        if tools:
            # No ``strict``: OpenAI turns it off for parallel calls anyway, and our own check
            # (pydantic, in slashbots.tool) validates every call's arguments.
            body["tools"] = tools
        if s.temperature is not None:
            body["temperature"] = s.temperature
        if s.max_completion_tokens is not None:
            body[s.max_tokens_param] = s.max_completion_tokens
        return body

    async def _pieces(
        self, endpoint: Endpoint, response: httpx.Response, stream: CompletionStream
    ) -> AsyncIterator[str]:
        content_type = response.headers.get("content-type", "")
        if content_type.startswith("application/json"):
            # Some compatible servers ignore ``stream: true`` and send the whole answer.
            text = self._whole_answer(endpoint, await response.aread(), stream)
            if text:
                yield text
            return
        parser = SSEParser()
        async for chunk in response.aiter_bytes():
            for event in parser.feed(chunk):
                try:
                    text = stream.read(event)
                except StreamErrorEvent as exc:
                    raise self._stream_error(endpoint, exc.error) from None
                if stream.done:
                    return
                if text:
                    yield text
        parser.close()
        if parser.truncated:
            log.info("%s stream ended in the middle of an event", endpoint.service)

    def _whole_answer(self, endpoint: Endpoint, body: bytes, stream: CompletionStream) -> str:
        """The text of a non-streamed completion, recording its finish_reason on ``stream``."""
        try:
            payload = json.loads(body)
        except ValueError:
            payload = None
        if isinstance(payload, dict) and payload.get("error"):
            raise self._stream_error(endpoint, payload["error"])
        try:
            choice = payload["choices"][0]
            text = choice["message"].get("content") or ""
            stream.tool_calls.add(choice["message"].get("tool_calls"))
        except (KeyError, IndexError, TypeError, AttributeError):
            log.warning("unexpected completion body: %.300s", self._redact(body.decode("utf-8", "replace")))
            raise wording.bad_response(endpoint.service) from None
        stream.finish_reason = choice.get("finish_reason") or "stop"
        if isinstance(payload.get("usage"), dict):
            stream.usage = payload["usage"]
        return text if isinstance(text, str) else ""

    def _finish(self, endpoint: Endpoint, stream: CompletionStream, shown: bool) -> str:
        """What to add once the answer ended: a note for "length", a refusal for "content_filter"."""
        log.debug("finished: %s, usage %s", stream.finish_reason, stream.usage)
        if stream.finish_reason == "length":
            return wording.length_note(shown)
        if stream.finish_reason == "content_filter":
            raise wording.content_filter_refusal(endpoint.service, shown)
        return ""

    # -- deciding: retry (return the delay) or give up (raise) ------------------------------

    def _judge_status(self, endpoint: Endpoint, response: httpx.Response, attempt: int) -> float:
        status = response.status_code
        try:
            payload: Any = response.json()
        except ValueError:
            payload = response.text[:500]
        error = ErrorBody.parse(status, payload)
        retryable = (status in RETRYABLE_STATUSES or status >= 500) and error.reason != "quota"
        wait = server_delay(response.headers)
        log.warning(
            "%s %s: HTTP %s, type=%r code=%r request_id=%s retry_after=%s (attempt %d): %s",
            endpoint.service, _path(endpoint.url), status, error.type, error.code,
            response.headers.get("x-request-id", "-"), wait, attempt + 1,
            self._redact(error.message or str(payload)[:300]),
        )
        if not retryable or attempt >= self.settings.max_retries or (wait or 0) > MAX_SERVER_DELAY:
            raise self._status_failure(endpoint, error, wait if (wait or 0) > MAX_SERVER_DELAY else None)
        return wait if wait and wait > 0 else backoff(attempt)

    def _judge_transport(self, endpoint: Endpoint, exc: Exception, attempt: int) -> float:
        log.warning(
            "%s %s: %s (attempt %d)", endpoint.service, _path(endpoint.url), _describe(exc), attempt + 1
        )
        if attempt >= self.settings.max_retries:
            raise self._transport_failure(endpoint, exc, during_answer=False) from exc
        return backoff(attempt)

    # -- failures: logged here, worded in ``wording`` -----------------------------------------

    def _status_failure(self, endpoint: Endpoint, error: ErrorBody, wait: float | None) -> Exception:
        return wording.status_failure(self._redacted(error), service=endpoint.service, key_hint=endpoint.key_hint,
                                      settings=self.settings, wait=wait)

    def _moderation_failure(self, failure: APIFailure) -> APIFailure:
        if failure.reason in wording.MODERATION_SETUP_REASONS:
            log.warning(
                "moderation at %s is not available (%s); if this server has none, set `moderation: false` "
                "or point `moderation_base_url` at https://api.openai.com/v1",
                self.settings.moderation_url, failure.reason,
            )
        return wording.moderation_failure(failure, moderation_model=self.settings.moderation_model)

    def _stream_error(self, endpoint: Endpoint, error: Mapping[str, Any]) -> Exception:
        body = self._redacted(ErrorBody.parse(None, {"error": error}))
        log.warning(
            "%s reported an error in the stream: type=%r code=%r: %s",
            endpoint.service, body.type, body.code, body.message,
        )
        return wording.stream_failure(body, service=endpoint.service, key_hint=endpoint.key_hint,
                                      settings=self.settings)

    def _transport_failure(self, endpoint: Endpoint, exc: Exception, *, during_answer: bool) -> APIFailure:
        if isinstance(exc, _StreamCutOff):
            kind = "cut_off"
        elif isinstance(exc, httpx.ProxyError) and not during_answer:
            kind = "proxy"
        elif isinstance(exc, httpx.TimeoutException) and not isinstance(exc, httpx.ConnectTimeout):
            kind = "timeout"
        else:
            kind = "connection"
        return wording.transport_failure(kind, service=endpoint.service, read_timeout=self.settings.read_timeout,
                                         during_answer=during_answer)

    def _redacted(self, error: ErrorBody) -> ErrorBody:
        return dataclasses.replace(error, message=self._redact(error.message))

    @property
    def _secrets(self) -> tuple[str, ...]:
        return tuple(key for key in (self.settings.api_key, self.settings.moderation_api_key) if key)

    def _redact(self, text: str) -> str:
        return redact(text, self._secrets)


class _StreamCutOff(Exception):
    """The stream ended with neither ``[DONE]`` nor a ``finish_reason``."""


def backoff(attempt: int, rand: float | None = None) -> float:
    """openai-python's delay before retry ``attempt`` (0-based): 0.5 s doubling to 8 s, minus up to 25% jitter."""
    jitter = random.random() if rand is None else rand
    return min(0.5 * 2**attempt, 8.0) * (1 - 0.25 * jitter)


def server_delay(headers: Mapping[str, str]) -> float | None:
    """The wait the server asked for, in seconds: ``retry-after-ms``, else ``retry-after`` (seconds or a date)."""
    try:
        return float(headers["retry-after-ms"]) / 1000
    except (KeyError, ValueError):
        pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return when.timestamp() - time.time()


def redact(text: str, secrets: tuple[str, ...] = ()) -> str:
    """``text`` without the given secrets or anything shaped like an API key, for logs and users."""
    for secret in secrets:
        text = text.replace(secret, "[redacted]")
    return _KEY_PATTERN.sub("[redacted key]", text)


def _chat_endpoint(s: Settings) -> Endpoint:
    if s.is_azure:
        headers = {"api-key": s.api_key} if s.api_key else {}
        hint = "AZURE_OPENAI_API_KEY or `api_key` in the bot's options"
    else:
        headers = {"Authorization": f"Bearer {s.api_key}"} if s.api_key else {}
        hint = "OPENAI_API_KEY or `api_key` in the bot's options"
    return Endpoint(
        url=s.chat_url,
        params=s.chat_params,
        headers={**headers, "Accept": "text/event-stream"},
        service=s.service,
        key_hint=hint,
    )


def _moderation_endpoint(s: Settings) -> Endpoint:
    key = s.moderation_api_key
    return Endpoint(
        url=s.moderation_url,
        params={},
        headers={"Authorization": f"Bearer {key}"} if key else {},
        service="OpenAI's moderation service" if is_openai_url(s.moderation_base_url) else "the moderation server",
        key_hint="OPENAI_API_KEY, `moderation_api_key` or `api_key` in the bot's options",
    )


def _verdict(response: httpx.Response, endpoint: Endpoint, secrets: tuple[str, ...]) -> Verdict:
    try:
        result = response.json()["results"][0]
        flagged = bool(result["flagged"])
        categories = result.get("categories") or {}
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        log.warning("unexpected moderation response (%s): %.300s", exc, redact(response.text, secrets))
        raise wording.bad_response(endpoint.service) from None
    return Verdict(flagged, tuple(name for name, hit in categories.items() if hit is True))


def _rejects_stream_options(response: httpx.Response) -> bool:
    """A 400 (or 422) that names ``stream_options``: a server that does not know the option."""
    return response.status_code in (400, 422) and "stream_options" in response.text


def _path(url: str) -> str:
    return httpx.URL(url).path


def _describe(exc: Exception) -> str:
    if isinstance(exc, _StreamCutOff):
        return "the stream ended without [DONE] or a finish_reason"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
