"""What went wrong with a call: the failure users are shown, and an error body sorted into a reason.

The reason (``auth``, ``quota``, ``rate_limited``, ...) drives both whether a call is
retried (``openai_api``) and what the user is told (``wording``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Mapping

from slashbots import ProviderError

RETRYABLE_STATUSES = frozenset({408, 409, 429})  # and every status from 500 up


class APIFailure(ProviderError):
    """A failed call, worded for the user in ``text``; ``reason`` and ``status`` are for code and logs."""

    def __init__(self, text: str, reason: str, status: int | None = None) -> None:
        super().__init__(text)
        self.reason = reason
        self.status = status


@dataclass(frozen=True)
class ErrorBody:
    """The interesting parts of an error, from a response body or a stream event."""

    status: int | None
    message: str = ""
    type: str = ""
    code: str = ""
    raw: Mapping[str, Any] | None = None

    @classmethod
    def parse(cls, status: int | None, payload: Any) -> ErrorBody:
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
