"""HTTP calls to OpenAI or an OpenAI-compatible server: moderation, the streamed chat, retries,
and turning every failure into a message a chat user understands.

Retries follow openai-python's policy, with two differences that matter in a chat: a
quota error (``insufficient_quota``, sent as 429) is never retried, and a server that asks
us to wait more than a minute is not waited for; the user is told instead. A stream that
breaks before any text was shown is retried like a failed request; once text is shown it
cannot be taken back, so a break then ends the answer with an explanation.

User-facing texts never include the API key or the server's raw 401 message (which
echoes part of the key); details go to the ``slashbots.chatgpt`` log, keys redacted.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import json
import logging
import random
import re
import time
from dataclasses import dataclass
from typing import Any, AsyncIterator, Mapping

import httpx

from slashbots import ProviderError, Refusal
from slashbots.plugins.chatgpt.completions import CompletionStream, StreamErrorEvent
from slashbots.plugins.chatgpt.options import Settings, is_openai_url
from slashbots.plugins.chatgpt.sse import SSEParser

log = logging.getLogger("slashbots.chatgpt")

MAX_SERVER_DELAY = 60.0  # seconds; a longer Retry-After is reported, not waited out
RETRYABLE_STATUSES = frozenset({408, 409, 429})  # and every status from 500 up
_KEY_PATTERN = re.compile(r"\bsk-[A-Za-z0-9_\-*.]{4,}")


class APIFailure(ProviderError):
    """A failed call, worded for the user in ``text``; ``reason`` and ``status`` are for code and logs."""

    def __init__(self, text: str, reason: str, status: int | None = None) -> None:
        super().__init__(text)
        self.reason = reason
        self.status = status


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


@dataclass(frozen=True)
class _ErrorBody:
    """The interesting parts of an error, from a response body or a stream event."""

    status: int | None
    message: str = ""
    type: str = ""
    code: str = ""
    raw: Mapping[str, Any] | None = None

    @classmethod
    def parse(cls, status: int | None, payload: Any) -> _ErrorBody:
        error = payload.get("error", payload) if isinstance(payload, dict) else payload
        if not isinstance(error, dict):
            return cls(status, message=str(error or ""))
        code = error.get("code")
        # vLLM and llama.cpp put the HTTP status in ``code`` as an integer.
        if isinstance(code, int) and not isinstance(code, bool) and status is None:
            status = code
        return cls(
            status,
            message=str(error.get("message") or ""),
            type=str(error.get("type") or ""),
            code="" if code is None else str(code),
            raw=error,
        )

    @property
    def reason(self) -> str:
        words = f"{self.code} {self.type}".lower()
        message = self.message.lower()
        if self.status == 407:
            return "proxy"
        if "insufficient_quota" in words:
            return "quota"
        if "context_length" in words or "context_size" in words or re.search(
            r"maximum context length|context (?:size|window|length)", message
        ):
            return "context_length"
        if self.code == "content_filter":
            return "content_filter"
        if self.status == 401 or self.code == "invalid_api_key":
            return "auth"
        if self.status == 403:
            return "forbidden"
        if self.status == 404 or "not_found" in words or "deploymentnotfound" in words:
            return "model_not_found" if "model" in words + message or "deployment" in words + message else "not_found"
        if self.status == 429 or "rate_limit" in words:
            return "rate_limited"
        if self.status is None or self.status in RETRYABLE_STATUSES or self.status >= 500:
            return "server_error"
        return "bad_request"


class OpenAIClient:
    """Moderation and streamed chat over one pooled ``httpx.AsyncClient``, opened on first use."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._http: httpx.AsyncClient | None = None
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

    async def stream_chat(self, messages: list[dict[str, str]]) -> AsyncIterator[str]:
        """Stream the answer to ``messages`` as text pieces; failures raise ``APIFailure``/``Refusal``."""
        endpoint = self.chat
        body = self._chat_body(messages)
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
                        note = self._finish(endpoint, stream, shown)
                        if note:
                            yield note
                        return
                    await response.aread()
                    delay = self._judge_status(endpoint, response, attempt)
            except (httpx.RequestError, _StreamCutOff) as exc:
                if shown:
                    raise self._transport_failure(endpoint, exc, during_answer=True) from exc
                delay = self._judge_transport(endpoint, exc, attempt)
            await asyncio.sleep(delay)
            attempt += 1

    def _chat_body(self, messages: list[dict[str, str]]) -> dict[str, Any]:
        s = self.settings
        body: dict[str, Any] = {
            "model": s.model,
            "messages": messages,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
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
        except (KeyError, IndexError, TypeError, AttributeError):
            log.warning("unexpected completion body: %.300s", self._redact(body.decode("utf-8", "replace")))
            raise APIFailure(
                f"{_capital(endpoint.service)} sent an answer the bot doesn't understand.", "bad_response"
            ) from None
        stream.finish_reason = choice.get("finish_reason") or "stop"
        return text if isinstance(text, str) else ""

    def _finish(self, endpoint: Endpoint, stream: CompletionStream, shown: bool) -> str:
        """What to add once the answer ended: a note for "length", a refusal for "content_filter"."""
        log.debug("finished: %s, usage %s", stream.finish_reason, stream.usage)
        if stream.finish_reason == "length":
            return "\n\n_(This answer was cut short: it reached the length limit.)_" if shown else (
                "_(The answer was cut short before it began: it reached the length limit.)_"
            )
        if stream.finish_reason == "content_filter":
            service = endpoint.service
            raise Refusal(
                f"The rest of this answer was withheld by {service}'s content filter."
                if shown
                else f"{_capital(service)}'s content filter withheld this answer."
            )
        return ""

    # -- deciding: retry (return the delay) or give up (raise) ------------------------------

    def _judge_status(self, endpoint: Endpoint, response: httpx.Response, attempt: int) -> float:
        status = response.status_code
        try:
            payload: Any = response.json()
        except ValueError:
            payload = response.text[:500]
        error = _ErrorBody.parse(status, payload)
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

    # -- wording -------------------------------------------------------------------------------

    def _status_failure(self, endpoint: Endpoint, error: _ErrorBody, wait: float | None) -> Exception:
        name = _capital(endpoint.service)
        reason, status = error.reason, error.status
        model = self.settings.azure_deployment or self.settings.model
        if reason == "auth":
            text = (
                f"{name} rejected this bot's API key, so the bot can't answer. "
                f"Whoever runs the bot should check the key ({endpoint.key_hint})."
            )
        elif reason == "proxy":
            text = (
                f"The bot couldn't get through its proxy to {endpoint.service}: the proxy refused its credentials "
                "(HTTP 407). Whoever runs the bot should check HTTPS_PROXY and HTTP_PROXY."
            )
        elif reason == "forbidden":
            text = (
                f"{name} refused access (HTTP 403): this bot's API key may not be allowed to use it, "
                "or the service may not be available here."
            )
        elif reason == "quota":
            text = (
                f"{name} says this bot's account has run out of quota, so the bot can't answer right now. "
                "Whoever runs the bot should check the account's plan and billing."
            )
        elif reason == "context_length":
            text = (
                f"Your question, together with the earlier conversation sent along for context, is too "
                f"long for the model {model!r}. Try a shorter question."
            )
        elif reason == "content_filter":
            blocked = _filtered_categories(error.raw)
            return Refusal(
                f"{name}'s content filter blocked this request"
                + (f" ({', '.join(blocked)})" if blocked else "")
                + ", so it wasn't answered."
            )
        elif reason == "model_not_found":
            what = "deployment" if self.settings.is_azure else "model"
            option = "azure_deployment" if self.settings.is_azure else "model"
            text = (
                f"{name} has no {what} {model!r}, or this bot's key can't use it. "
                f"Whoever runs the bot should check `{option}` in its options."
            )
        elif reason == "not_found":
            text = (
                f"{name} answered “not found” (HTTP 404). "
                "Whoever runs the bot should check `base_url` in its options."
            )
        elif reason == "rate_limited":
            text = (
                f"{name} is rate-limiting this bot and asked it to wait {_duration(wait)}. Please try again after that."
                if wait
                else f"{name} is rate-limiting this bot right now (too many requests). Please try again in a minute."
            )
        elif reason == "server_error":
            what = f"HTTP {status}" if status else "it reported a server error"
            text = (
                f"{name} is having trouble right now ({what}) and asked to wait {_duration(wait)}. Please try again later."
                if wait
                else f"{name} is having trouble right now ({what}). Please try again in a little while."
            )
        else:
            detail = self._redact(error.message)[:300] or "no details given"
            text = f"{name} couldn't accept the request (HTTP {status}): {detail}"
        return APIFailure(text, reason, status)

    def _moderation_failure(self, failure: APIFailure) -> APIFailure:
        if failure.reason in ("auth", "quota", "proxy"):
            return failure  # the same words fit: the operator has the same thing to fix
        setup = {
            "not_found": "there is no moderation endpoint at the configured address",
            "model_not_found": f"it doesn't know the model {self.settings.moderation_model!r}",
            "forbidden": "it refused access",
        }
        if failure.reason in setup:
            log.warning(
                "moderation at %s is not available (%s); if this server has none, set `moderation: false` "
                "or point `moderation_base_url` at https://api.openai.com/v1",
                self.settings.moderation_url, failure.reason,
            )
            what, then = setup[failure.reason], "Whoever runs the bot should check its moderation settings."
        else:
            what = {
                "timeout": "it didn't respond in time",
                "connection": "it couldn't be reached",
                "rate_limited": "it is rate-limiting this bot",
                "bad_response": "its answer made no sense",
            }.get(failure.reason, f"HTTP {failure.status}" if failure.status else "it failed")
            then = "Please try again in a moment."
        return APIFailure(
            f"Your request wasn't sent: the bot couldn't check it with the content moderation service "
            f"({what}). {then}",
            f"moderation_{failure.reason}",
            failure.status,
        )

    def _stream_error(self, endpoint: Endpoint, error: Mapping[str, Any]) -> Exception:
        body = _ErrorBody.parse(None, {"error": error})
        log.warning(
            "%s reported an error in the stream: type=%r code=%r: %s",
            endpoint.service, body.type, body.code, self._redact(body.message),
        )
        if body.reason in ("server_error", "rate_limited"):
            kind = (body.type or body.code or "server error").replace("_", " ")
            return APIFailure(
                f"{_capital(endpoint.service)} reported an error while writing the answer ({kind}). "
                "Please try again.",
                "stream_error",
                body.status,
            )
        return self._status_failure(endpoint, body, None)

    def _transport_failure(self, endpoint: Endpoint, exc: Exception, *, during_answer: bool) -> APIFailure:
        service, name = endpoint.service, _capital(endpoint.service)
        if isinstance(exc, _StreamCutOff):
            return APIFailure(
                f"The answer from {service} stopped before it was finished (the stream ended early)."
                if during_answer
                else f"{name} ended the answer before sending any of it. Please try again.",
                "cut_off",
            )
        if isinstance(exc, httpx.ProxyError) and not during_answer:
            # httpx's message is the proxy's status line ("407 Proxy Authentication Required"): no URL, no credentials.
            return APIFailure(
                f"The bot couldn't get through its proxy to {service} ({exc}). "
                "Whoever runs the bot should check HTTPS_PROXY and HTTP_PROXY.",
                "proxy",
            )
        if isinstance(exc, httpx.TimeoutException) and not isinstance(exc, httpx.ConnectTimeout):
            return APIFailure(
                f"{name} stopped sending the answer partway through "
                f"(nothing arrived for {self.settings.read_timeout:g} seconds)."
                if during_answer
                else f"{name} didn't respond in time. Please try again in a moment.",
                "timeout",
            )
        return APIFailure(
            f"The connection to {service} broke off before the answer was finished."
            if during_answer
            else f"The bot couldn't reach {service}. Please try again in a moment.",
            "connection",
        )

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
        raise APIFailure(
            f"{_capital(endpoint.service)} sent an answer the bot doesn't understand.", "bad_response"
        ) from None
    return Verdict(flagged, tuple(name for name, hit in categories.items() if hit is True))


def _filtered_categories(error: Mapping[str, Any] | None) -> list[str]:
    """Azure's prompt filter: the categories marked ``filtered`` in its ``innererror``."""
    inner = (error or {}).get("innererror") or {}
    results = inner.get("content_filter_result") or {} if isinstance(inner, dict) else {}
    return [
        name.replace("_", " ")
        for name, verdict in results.items()
        if isinstance(verdict, dict) and (verdict.get("filtered") or verdict.get("detected"))
    ]


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]


def _duration(seconds: float | None) -> str:
    seconds = max(0.0, seconds or 0.0)
    if seconds < 90:
        return f"{seconds:.0f} seconds"
    if seconds < 90 * 60:
        return f"about {seconds / 60:.0f} minutes"
    return f"about {seconds / 3600:.0f} hours"


def _path(url: str) -> str:
    return httpx.URL(url).path


def _describe(exc: Exception) -> str:
    if isinstance(exc, _StreamCutOff):
        return "the stream ended without [DONE] or a finish_reason"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
