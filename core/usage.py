"""Tokens an answer used, as its provider reports them: ``request.report_usage(...)``.

Providers report each model call when it ends (each round of tool calls is a call), so an
answer cut short still counts what it had spent. A provider whose server sends no count
estimates one with ``estimate_tokens`` and says so (``estimated=True``): /metrics and
``slashbots usage`` keep estimates apart from counts the server reported.
"""

from __future__ import annotations

from dataclasses import dataclass

# OpenAI's rule of thumb for English text. Tokenizers differ, and code or other languages
# run denser, so an estimate is only that: a budget still holds, within this error.
CHARS_PER_TOKEN = 4
KEPT_DAYS = 35  # with Redis, days each day's counts are kept for `slashbots usage`


def estimate_tokens(text: str) -> int:
    """About how many tokens ``text`` is: one per four characters, rounded up."""
    return -(-len(text) // CHARS_PER_TOKEN)


@dataclass
class Usage:
    """What one run of one answer used so far, kept apart by kind and by source."""

    prompt: int = 0
    completion: int = 0
    estimated_prompt: int = 0  # of ``prompt``, the tokens that were estimated
    estimated_completion: int = 0

    def add(self, prompt_tokens: int, completion_tokens: int, *, estimated: bool = False) -> None:
        for name, value in (("prompt_tokens", prompt_tokens), ("completion_tokens", completion_tokens)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"report_usage: {name} must be a whole number of at least 0, got {value!r}")
        self.prompt += prompt_tokens
        self.completion += completion_tokens
        if estimated:
            self.estimated_prompt += prompt_tokens
            self.estimated_completion += completion_tokens

    @property
    def total(self) -> int:
        return self.prompt + self.completion

    @property
    def estimated(self) -> int:
        return self.estimated_prompt + self.estimated_completion
