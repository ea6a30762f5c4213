"""The ChatGPT bot's ``options:`` from bots.yaml, checked once at start-up.

Every mistake raises ``ValueError`` naming the option, which the platform reports as a
config error at ``bots[i].options``. A missing API key is deliberately not a mistake
here: the server should still start (other bots work), and the bot tells whoever asks
how to set one.

bots.yaml fills ``${VAR}`` into strings, so a value that came from the environment is
always a string: an empty one (an unset variable) means "use the default", and numbers
and ``true``/``false`` are also accepted written as strings. ``system_prompt: ""`` is the
one empty value that means itself: no system message.
"""

from __future__ import annotations

import difflib
import math
import os
import re
from dataclasses import dataclass
from typing import Any, Mapping
from urllib.parse import urlsplit

OPENAI_BASE_URL = "https://api.openai.com/v1"

DEFAULT_SYSTEM_PROMPT = (
    "You are a helpful assistant answering questions in a team chat, where several people "
    "may talk to you in the same conversation. Be accurate, clear and concise. Use Markdown "
    "only where it helps, such as lists and code blocks."
)

OPTION_NAMES = (
    "model",
    "system_prompt",
    "temperature",
    "max_completion_tokens",
    "max_tokens_param",
    "api_key",
    "base_url",
    "timeout",
    "max_retries",
    "memory_turns",
    "memory_chars",
    "moderation",
    "moderation_model",
    "moderation_fail_open",
    "moderation_base_url",
    "moderation_api_key",
    "azure_deployment",
    "api_version",
    "max_tool_rounds",
    "tool_timeout",
    "show_tool_calls",
)


@dataclass(frozen=True)
class Settings:
    """Validated options with every default filled in."""

    model: str = "gpt-4o-mini"
    system_prompt: str = DEFAULT_SYSTEM_PROMPT
    temperature: float | None = None
    max_completion_tokens: int | None = None
    max_tokens_param: str = "max_completion_tokens"
    api_key: str = ""  # empty: none configured
    base_url: str = OPENAI_BASE_URL
    connect_timeout: float = 5.0
    read_timeout: float = 120.0
    max_retries: int = 2
    memory_turns: int = 10
    memory_chars: int = 12_000
    moderation: bool = True
    moderation_model: str = "omni-moderation-latest"
    moderation_fail_open: bool = False
    moderation_base_url: str = OPENAI_BASE_URL
    moderation_api_key: str = ""
    azure_deployment: str | None = None
    api_version: str | None = None
    max_tool_rounds: int = 5  # rounds of tool calls before the model must answer with what it has
    tool_timeout: float = 30.0  # seconds one tool call may take
    show_tool_calls: bool = True  # a line per call in the answer: 🔧 current_time(zone="Europe/Paris")

    def __repr__(self) -> str:  # keep keys out of logs and tracebacks
        return f"Settings(model={self.model!r}, base_url={self.base_url!r}, azure={self.is_azure})"

    @property
    def is_azure(self) -> bool:
        return self.azure_deployment is not None

    @property
    def chat_url(self) -> str:
        if self.azure_deployment is not None:
            return f"{self.base_url}/openai/deployments/{self.azure_deployment}/chat/completions"
        return f"{self.base_url}/chat/completions"

    @property
    def chat_params(self) -> dict[str, str]:
        return {"api-version": self.api_version} if self.api_version else {}

    @property
    def moderation_url(self) -> str:
        return f"{self.moderation_base_url}/moderations"

    @property
    def chat_key_required(self) -> bool:
        # Local OpenAI-compatible servers (Ollama, vLLM, llama.cpp) usually run without a
        # key; OpenAI itself and Azure never do.
        return self.is_azure or is_openai_url(self.base_url)

    @property
    def moderation_key_required(self) -> bool:
        return is_openai_url(self.moderation_base_url)

    @property
    def service(self) -> str:
        """How user-facing messages name the chat service."""
        if self.is_azure:
            return "Azure OpenAI"
        return "OpenAI" if is_openai_url(self.base_url) else "the model server"


def parse_options(options: Mapping[str, Any] | None, environ: Mapping[str, str] = os.environ) -> Settings:
    """Check the bot's options and fill in defaults; ``ValueError`` names the first bad option."""
    options = dict(options or {})
    unknown = sorted(set(options) - set(OPTION_NAMES))
    if unknown:
        name = str(unknown[0])
        close = difflib.get_close_matches(name, OPTION_NAMES, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(
            f"unknown option {name!r}{hint}; the chatgpt provider accepts: {', '.join(OPTION_NAMES)}"
        )
    given = {name: value for name, value in options.items() if not _unset(name, value)}
    defaults = Settings()

    azure_deployment = _text(given, "azure_deployment")
    api_version = _text(given, "api_version")
    if azure_deployment is not None and api_version is None:
        raise ValueError("api_version is required with azure_deployment (for example '2024-10-21')")
    if api_version is not None and azure_deployment is None:
        raise ValueError("api_version only applies to Azure: set azure_deployment too, or remove it")
    is_azure = azure_deployment is not None

    if is_azure:
        if "base_url" not in given:
            raise ValueError(
                "base_url is required with azure_deployment: your resource's endpoint, "
                "such as https://my-resource.openai.azure.com"
            )
        base_url = _url(given, "base_url")
        api_key = _text(given, "api_key") or environ.get("AZURE_OPENAI_API_KEY", "")
    else:
        base_url = _url(given, "base_url") if "base_url" in given else _env_url(environ)
        api_key = _text(given, "api_key") or environ.get("OPENAI_API_KEY", "")

    # Moderation talks to OpenAI-style /moderations, by default on the chat server. Azure
    # has no such endpoint (its content filter is built in), so there it is off unless
    # pointed somewhere.
    moderation_base_url = _url(given, "moderation_base_url") if "moderation_base_url" in given else base_url
    moderation = _flag(given, "moderation", not is_azure or "moderation_base_url" in given)
    if is_azure and moderation and "moderation_base_url" not in given:
        raise ValueError(
            "moderation on Azure needs moderation_base_url (an OpenAI-style server with /moderations, "
            "such as https://api.openai.com/v1): Azure's own content filter has no such endpoint"
        )
    # The same server takes the same key; another server (say, OpenAI next to a local
    # model) takes the OpenAI key.
    moderation_api_key = _text(given, "moderation_api_key") or (
        api_key if moderation_base_url == base_url else environ.get("OPENAI_API_KEY", "")
    )

    connect_timeout, read_timeout = _timeouts(given, defaults)
    system_prompt = given.get("system_prompt", defaults.system_prompt)
    if not isinstance(system_prompt, str):
        raise ValueError(f"system_prompt must be a string, not {_kind(system_prompt)}")
    max_tokens_param = _text(given, "max_tokens_param") or defaults.max_tokens_param
    if max_tokens_param not in ("max_completion_tokens", "max_tokens"):
        raise ValueError(f"max_tokens_param must be 'max_completion_tokens' or 'max_tokens', not {max_tokens_param!r}")

    return Settings(
        model=_text(given, "model") or azure_deployment or defaults.model,
        system_prompt=system_prompt,
        temperature=_number(given, "temperature", 0, 2),
        max_completion_tokens=_integer(given, "max_completion_tokens", 1),
        max_tokens_param=max_tokens_param,
        api_key=api_key.strip(),
        base_url=base_url,
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        max_retries=_default(_integer(given, "max_retries", 0), defaults.max_retries),
        memory_turns=_default(_integer(given, "memory_turns", 0), defaults.memory_turns),
        memory_chars=_default(_integer(given, "memory_chars", 0), defaults.memory_chars),
        moderation=moderation,
        moderation_model=_text(given, "moderation_model") or defaults.moderation_model,
        moderation_fail_open=_flag(given, "moderation_fail_open", defaults.moderation_fail_open),
        moderation_base_url=moderation_base_url,
        moderation_api_key=moderation_api_key.strip(),
        azure_deployment=azure_deployment,
        api_version=api_version,
        max_tool_rounds=_default(_integer(given, "max_tool_rounds", 1), defaults.max_tool_rounds),
        tool_timeout=_seconds(given.get("tool_timeout", defaults.tool_timeout), "tool_timeout"),
        show_tool_calls=_flag(given, "show_tool_calls", defaults.show_tool_calls),
    )


def is_openai_url(url: str) -> bool:
    """Whether ``url`` is OpenAI's own API (which always needs a key)."""
    host = urlsplit(url).hostname or ""
    return host == "openai.com" or host.endswith(".openai.com")


def _unset(name: str, value: Any) -> bool:
    """No value, or an empty string from an unset ``${VAR}``: the default applies."""
    if value is None:
        return True
    return isinstance(value, str) and not value.strip() and name != "system_prompt"


def _kind(value: Any) -> str:
    kind = {bool: "a boolean", dict: "a mapping", list: "a list"}.get(type(value))
    return kind or f"{value!r:.60}"


def _default(value: int | None, default: int) -> int:
    return default if value is None else value


def _text(given: Mapping[str, Any], name: str) -> str | None:
    if name not in given:
        return None
    value = given[name]
    if not isinstance(value, str):
        raise ValueError(f"{name} must be a string, not {_kind(value)}")
    return value.strip()


def _flag(given: Mapping[str, Any], name: str, default: bool) -> bool:
    value = given.get(name, default)
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be true or false, not {_kind(value)}")
    return value


def _integer(given: Mapping[str, Any], name: str, minimum: int) -> int | None:
    if name not in given:
        return None
    value = given[name]
    if isinstance(value, str) and re.fullmatch(r"\s*[+-]?\d+\s*", value):
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be a whole number, not {_kind(value)}")
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, not {value}")
    return value


def _as_number(value: Any) -> float | None:
    """``value`` as a finite number (a numeric string counts), else None."""
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def _number(given: Mapping[str, Any], name: str, low: float, high: float) -> float | None:
    if name not in given:
        return None
    value = _as_number(given[name])
    if value is None:
        raise ValueError(f"{name} must be a number, not {_kind(given[name])}")
    if not low <= value <= high:
        raise ValueError(f"{name} must be between {low:g} and {high:g}, not {value:g}")
    return value


def _timeouts(given: Mapping[str, Any], defaults: Settings) -> tuple[float, float]:
    """``timeout: 30`` sets both; ``timeout: {connect: 5, read: 120}`` sets them apart."""
    if "timeout" not in given:
        return defaults.connect_timeout, defaults.read_timeout
    value = given["timeout"]
    if isinstance(value, Mapping):
        extra = sorted(set(value) - {"connect", "read"})
        if extra:
            raise ValueError(f"timeout has unknown key {extra[0]!r}; use connect and read (seconds)")
        connect = _seconds(value.get("connect", defaults.connect_timeout), "timeout.connect")
        read = _seconds(value.get("read", defaults.read_timeout), "timeout.read")
        return connect, read
    seconds = _seconds(value, "timeout")
    return seconds, seconds


def _seconds(value: Any, name: str) -> float:
    seconds = _as_number(value)
    if seconds is None or seconds <= 0:
        raise ValueError(f"{name} must be a number of seconds above 0, not {_kind(value)}")
    return seconds


def _url(given: Mapping[str, Any], name: str) -> str:
    return _checked_url(_text(given, name) or "", name)


def _env_url(environ: Mapping[str, str]) -> str:
    value = environ.get("OPENAI_BASE_URL", "").strip()
    return _checked_url(value, "base_url (from OPENAI_BASE_URL)") if value else OPENAI_BASE_URL


def _checked_url(value: str, name: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{name} must be an http:// or https:// URL, not {value!r}")
    if parts.query or parts.fragment:
        raise ValueError(f"{name} must not have a query or fragment: {value!r}")
    return value.rstrip("/")
