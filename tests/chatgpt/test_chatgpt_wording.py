"""The words users read: moderation refusals, retry timing, and keys kept out of messages."""

from __future__ import annotations

import time
from email.utils import formatdate

import httpx
import pytest

from slashbots.plugins.chatgpt.moderation import category_words, refusal_text
from slashbots.plugins.chatgpt.openai_api import backoff, redact, server_delay


def test_category_words_are_plain_and_most_specific() -> None:
    assert category_words(["harassment", "harassment/threatening", "violence", "violence/graphic"]) == [
        "threatening harassment",
        "graphic violence",
    ]
    assert category_words(["hate"]) == ["hate"]
    assert category_words(["self-harm/intent", "self-harm"]) == ["intent to self-harm"]
    assert category_words(["illicit/violent"]) == ["help with violent wrongdoing"]
    assert category_words(["new-thing/very_bad"]) == ["very bad new thing"]


def test_refusal_text() -> None:
    text = refusal_text(["harassment", "harassment/threatening", "violence", "violence/graphic"])
    assert text == (
        "Your request was refused: content moderation flagged it for threatening harassment and graphic "
        "violence, so it was not sent to the model."
    )
    assert "for sexual content, hate and violence," in refusal_text(["sexual", "hate", "violence"])
    assert refusal_text([]) == "Your request was refused: content moderation flagged it, so it was not sent to the model."
    assert "helpline" in refusal_text(["self-harm"])
    assert "/" not in refusal_text(["harassment/threatening"])


def test_backoff_follows_openai_python() -> None:
    assert backoff(0, rand=0) == 0.5
    assert backoff(0, rand=1) == 0.375
    assert backoff(1, rand=0) == 1.0
    assert backoff(4, rand=0) == 8.0
    assert backoff(10, rand=0) == 8.0
    assert all(0.375 <= backoff(0) <= 0.5 for _ in range(100))


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"retry-after-ms": "250"}, 0.25),
        ({"retry-after-ms": "250", "retry-after": "9"}, 0.25),
        ({"retry-after-ms": "soon", "retry-after": "9"}, 9.0),
        ({"retry-after": "1.5"}, 1.5),
        ({"retry-after": "tomorrow"}, None),
        ({}, None),
    ],
)
def test_server_delay(headers: dict[str, str], seconds: float | None) -> None:
    assert server_delay(httpx.Headers(headers)) == seconds


def test_server_delay_as_http_date() -> None:
    delay = server_delay(httpx.Headers({"retry-after": formatdate(time.time() + 30, usegmt=True)}))
    assert delay is not None and 28 <= delay <= 31


def test_redact() -> None:
    message = "Incorrect API key provided: sk-proj-***...wjh3. Also sk-abcdef123456 and my-own-secret."
    cleaned = redact(message, ("my-own-secret",))
    assert "sk-" not in cleaned and "wjh3" not in cleaned and "my-own-secret" not in cleaned
