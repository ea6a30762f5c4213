"""What a chat user is told when a call to the model fails or an answer ends early or incomplete.

Plain words, naming the service as the user knows it ("OpenAI", "Azure OpenAI", "the model
server") and saying who can fix what: the asker (try again, ask something shorter) or
whoever runs the bot (a key, a model name, a URL). Texts never carry a key: the server's
own message is shown only for an otherwise unexplained 400, and is redacted first (see
``openai_api``).
"""

from __future__ import annotations

from typing import Any, Mapping

from slashbots import Refusal
from slashbots.plugins.chatgpt.failures import APIFailure, ErrorBody
from slashbots.plugins.chatgpt.options import Settings

# Why moderation could not run that only whoever runs the bot can fix.
MODERATION_SETUP_REASONS = frozenset({"not_found", "model_not_found", "forbidden"})


def status_failure(error: ErrorBody, *, service: str, key_hint: str, settings: Settings,
                   wait: float | None = None) -> Exception:
    """An ``APIFailure`` (or a ``Refusal``, for a content filter) for an error the server answered with.

    ``error.message`` must already be redacted; ``wait`` is the delay the server asked for,
    when it was too long to wait out.
    """
    name = capital(service)
    reason, status = error.reason, error.status
    model = settings.azure_deployment or settings.model
    if reason == "auth":
        text = (
            f"{name} rejected this bot's API key, so the bot can't answer. "
            f"Whoever runs the bot should check the key ({key_hint})."
        )
    elif reason == "proxy":
        text = (
            f"The bot couldn't get through its proxy to {service}: the proxy refused its credentials "
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
        what = "deployment" if settings.is_azure else "model"
        option = "azure_deployment" if settings.is_azure else "model"
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
        detail = error.message[:300] or "no details given"
        text = f"{name} couldn't accept the request (HTTP {status}): {detail}"
    return APIFailure(text, reason, status)


def stream_failure(error: ErrorBody, *, service: str, key_hint: str, settings: Settings) -> Exception:
    """For an error the server reported inside a 200 stream (``error.message`` already redacted)."""
    if error.reason in ("server_error", "rate_limited"):
        kind = (error.type or error.code or "server error").replace("_", " ")
        return APIFailure(
            f"{capital(service)} reported an error while writing the answer ({kind}). Please try again.",
            "stream_error",
            error.status,
        )
    return status_failure(error, service=service, key_hint=key_hint, settings=settings)


def moderation_failure(failure: APIFailure, *, moderation_model: str) -> APIFailure:
    """Why the question was not sent: moderation, which runs first, could not say yes or no."""
    if failure.reason in ("auth", "quota", "proxy"):
        return failure  # the same words fit: the operator has the same thing to fix
    if failure.reason in MODERATION_SETUP_REASONS:
        what = {
            "not_found": "there is no moderation endpoint at the configured address",
            "model_not_found": f"it doesn't know the model {moderation_model!r}",
            "forbidden": "it refused access",
        }[failure.reason]
        then = "Whoever runs the bot should check its moderation settings."
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


def transport_failure(kind: str, *, service: str, read_timeout: float, during_answer: bool) -> APIFailure:
    """For a call that broke on the way: ``kind`` is ``cut_off``, ``proxy``, ``timeout`` or ``connection``.

    ``during_answer``: some of the answer was already shown, so it is left unfinished.
    """
    name = capital(service)
    if kind == "cut_off":
        text = (
            f"The answer from {service} stopped before it was finished (the stream ended early)."
            if during_answer
            else f"{name} ended the answer before sending any of it. Please try again."
        )
    elif kind == "proxy":
        # httpx's message would be the proxy's status line: no URL, no credentials, but nothing the user needs.
        text = (f"The bot couldn't get through its proxy to {service}. "
                "Whoever runs the bot should check HTTPS_PROXY and HTTP_PROXY.")
    elif kind == "timeout":
        text = (
            f"{name} stopped sending the answer partway through (nothing arrived for {read_timeout:g} seconds)."
            if during_answer
            else f"{name} didn't respond in time. Please try again in a moment."
        )
    else:
        text = (
            f"The connection to {service} broke off before the answer was finished."
            if during_answer
            else f"The bot couldn't reach {service}. Please try again in a moment."
        )
    return APIFailure(text, kind)


def bad_response(service: str) -> APIFailure:
    """For a success response whose body is not what the API promises."""
    return APIFailure(f"{capital(service)} sent an answer the bot doesn't understand.", "bad_response")


def length_note(shown: bool) -> str:
    """Added when the model stopped at its token limit (``finish_reason: length``)."""
    return "\n\n_(This answer was cut short: it reached the length limit.)_" if shown else (
        "_(The answer was cut short before it began: it reached the length limit.)_"
    )


def content_filter_refusal(service: str, shown: bool) -> Refusal:
    """For ``finish_reason: content_filter``: the service withheld (the rest of) the answer."""
    return Refusal(
        f"The rest of this answer was withheld by {service}'s content filter."
        if shown
        else f"{capital(service)}'s content filter withheld this answer."
    )


def out_of_tool_rounds(rounds: int) -> str:
    """Added when the model still wanted tools after ``max_tool_rounds`` rounds and had to answer without."""
    return (
        f"\n\n_(The bot stopped using tools after {rounds} round{'s' if rounds != 1 else ''} of calls, "
        "so this answer rests on what it had found by then.)_"
    )


def capital(text: str) -> str:
    return text[:1].upper() + text[1:]


def _filtered_categories(error: Mapping[str, Any] | None) -> list[str]:
    """Azure's prompt filter: the categories marked ``filtered`` in its ``innererror``."""
    inner = (error or {}).get("innererror") or {}
    results = inner.get("content_filter_result") or {} if isinstance(inner, dict) else {}
    return [
        name.replace("_", " ")
        for name, verdict in results.items()
        if isinstance(verdict, dict) and (verdict.get("filtered") or verdict.get("detected"))
    ]


def _duration(seconds: float | None) -> str:
    seconds = max(0.0, seconds or 0.0)
    if seconds < 90:
        return f"{seconds:.0f} seconds"
    if seconds < 90 * 60:
        return f"about {seconds / 60:.0f} minutes"
    return f"about {seconds / 3600:.0f} hours"
