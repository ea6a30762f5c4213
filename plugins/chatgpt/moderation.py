"""What the asker is told when moderation flags a request: plain words, no scores."""

from __future__ import annotations

from typing import Iterable

# The API's category keys, in words a chat user reads without a glossary.
CATEGORY_WORDS = {
    "harassment": "harassment",
    "harassment/threatening": "threatening harassment",
    "hate": "hate",
    "hate/threatening": "hateful threats",
    "illicit": "help with wrongdoing",
    "illicit/violent": "help with violent wrongdoing",
    "self-harm": "self-harm",
    "self-harm/intent": "intent to self-harm",
    "self-harm/instructions": "self-harm instructions",
    "sexual": "sexual content",
    "sexual/minors": "sexual content involving minors",
    "violence": "violence",
    "violence/graphic": "graphic violence",
}


def category_words(categories: Iterable[str]) -> list[str]:
    """Plain words for flagged categories, most specific only: "harassment/threatening" makes
    "harassment" redundant. Unknown keys (new ones appear over time) are spelled out as well as
    their shape allows: "foo-bar/baz" becomes "baz foo bar"."""
    flagged = list(dict.fromkeys(categories))
    words = []
    for key in flagged:
        if any(other.startswith(key + "/") for other in flagged):
            continue
        if key in CATEGORY_WORDS:
            words.append(CATEGORY_WORDS[key])
        else:
            main, _, detail = key.partition("/")
            words.append(" ".join(part for part in (detail, main) if part).replace("-", " ").replace("_", " "))
    return words


def refusal_text(categories: Iterable[str]) -> str:
    """The answer to a flagged request."""
    categories = tuple(categories)
    words = category_words(categories)
    if not words:
        why = ""
    elif len(words) == 1:
        why = f" for {words[0]}"
    else:
        why = f" for {', '.join(words[:-1])} and {words[-1]}"
    text = f"Your request was refused: content moderation flagged it{why}, so it was not sent to the model."
    if any(key.startswith("self-harm") for key in categories):
        # A refusal alone is a cold answer to someone who may be struggling.
        text += " If you're going through a hard time, please reach out to someone you trust or a local helpline."
    return text
