"""Conversation memory rebuilt from the channel's history."""

from __future__ import annotations

from slashbots import ChatMessage
from slashbots.plugins.chatgpt.memory import as_messages, history_limit, recent_exchanges

BOT_ID = "chatgpt-bot"


def ask(n: int, text: str, user: str = "alice", command: str = "gpt") -> ChatMessage:
    return ChatMessage(id=f"m{n}", user_id=user, text=f"/{command} {text}", command=command, args=text)


def bot(n: int, text: str, user: str = BOT_ID, answers: int | None = None) -> ChatMessage:
    return ChatMessage(id=f"m{n}", user_id=user, text=text, answer_to=None if answers is None else f"m{answers}")


def say(n: int, text: str, user: str = "bob") -> ChatMessage:
    return ChatMessage(id=f"m{n}", user_id=user, text=text)


def exchanges(history: list[ChatMessage], turns: int = 10, chars: int = 12_000) -> list[tuple[str, str]]:
    return recent_exchanges(history, command="gpt", bot_user_id=BOT_ID, max_turns=turns, max_chars=chars,
                            bot_name="ChatGPT bot")


def test_pairs_questions_with_answers_and_skips_chatter() -> None:
    history = [
        say(1, "morning all"),
        ask(2, "what is a vector clock?"),
        say(3, "good question"),
        bot(4, "A vector clock is..."),
        ask(5, "hello", command="weather"),
        bot(6, "Sunny", user="weather-bot"),
        ask(7, " and a Lamport clock? ", user="bob"),
        bot(8, "A Lamport clock is..."),
    ]
    assert exchanges(history) == [
        ("what is a vector clock?", "A vector clock is..."),
        ("and a Lamport clock?", "A Lamport clock is..."),
    ]


def test_questions_asked_before_the_answers_pair_in_order() -> None:
    history = [ask(1, "q1"), ask(2, "q2", user="bob"), bot(3, "a1"), bot(4, "a2")]
    assert exchanges(history) == [("q1", "a1"), ("q2", "a2")]


def test_split_answer_is_joined_back() -> None:
    history = [ask(1, "long one"), bot(2, "part one, "), bot(3, "part two")]
    assert exchanges(history) == [("long one", "part one, part two")]


def test_unanswered_and_empty_questions_are_dropped() -> None:
    # An empty command got a hint (in one or more messages); neither is memory worth keeping.
    history = [ask(1, ""), bot(2, "Ask me something after /gpt"), bot(3, "...more hint"), ask(4, "q"), bot(5, "a")]
    assert exchanges(history) == [("q", "a")]
    assert exchanges([ask(1, "q")]) == []
    assert exchanges([ask(1, "q1"), bot(2, "a1"), ask(3, "left hanging")]) == [("q1", "a1")]


def test_bot_messages_before_any_question_are_skipped() -> None:
    assert exchanges([bot(1, "welcome!"), ask(2, "q"), bot(3, "a")]) == [("q", "a")]


def test_interrupted_and_error_answers_are_kept_as_shown() -> None:
    history = [ask(1, "q"), bot(2, "Half an ans\n\n⚠️ Answer interrupted: the connection broke off.")]
    assert exchanges(history) == [("q", "Half an ans\n\n⚠️ Answer interrupted: the connection broke off.")]


def test_keeps_the_most_recent_turns() -> None:
    history = [message for n in range(6) for message in (ask(2 * n, f"q{n}"), bot(2 * n + 1, f"a{n}"))]
    assert exchanges(history, turns=2) == [("q4", "a4"), ("q5", "a5")]
    assert exchanges(history, turns=0) == []


def test_character_budget_keeps_whole_recent_exchanges() -> None:
    history = [ask(1, "q" * 10), bot(2, "a" * 100), ask(3, "q" * 10), bot(4, "a" * 30)]
    assert exchanges(history, chars=50) == [("q" * 10, "a" * 30)]
    assert exchanges(history, chars=149) == [("q" * 10, "a" * 30)]
    assert exchanges(history, chars=150) == [("q" * 10, "a" * 100), ("q" * 10, "a" * 30)]
    assert exchanges(history, chars=39) == []  # the latest alone is too long: nothing, not half of it


def test_as_messages() -> None:
    assert as_messages([("q1", "a1"), ("q2", "a2")]) == [
        {"role": "user", "content": "q1"},
        {"role": "assistant", "content": "a1"},
        {"role": "user", "content": "q2"},
        {"role": "assistant", "content": "a2"},
    ]


def test_history_limit_reads_more_than_the_turns_but_not_unbounded() -> None:
    assert history_limit(1) >= 2
    assert history_limit(10) >= 20
    assert history_limit(1000) == 200


def test_an_exchange_is_a_message_and_the_answer_that_names_it_whatever_asked() -> None:
    history = [
        say(1, "@ChatGPT bot what is a vector clock?", user="alice"),  # a mention
        say(2, "lunch?", user="bob"),
        bot(3, "A vector clock is...", answers=1),
        ask(4, "and a Lamport clock?"),  # a command
        say(5, "still thinking", user="carol"),
        bot(6, "A Lamport clock is...", answers=4),
        say(7, "how do they compare?", user="alice"),  # a follow-up in the bot's thread
        bot(8, "They differ in...", answers=7),
    ]
    assert exchanges(history) == [
        ("what is a vector clock?", "A vector clock is..."),
        ("and a Lamport clock?", "A Lamport clock is..."),
        ("how do they compare?", "They differ in..."),
    ]


def test_answers_name_their_question_whatever_the_order_and_split_answers_join() -> None:
    history = [say(1, "first?"), say(2, "second?"), bot(3, "to the second", answers=2), bot(4, "to the first, ", answers=1),
               bot(5, "continued", answers=1), bot(6, "an answer to a message before this history", answers=0)]
    assert exchanges(history) == [("second?", "to the second"), ("first?", "to the first, continued")]


def test_chatter_never_pairs_with_answers_that_name_their_question() -> None:
    history = [say(1, "hello all"), ask(2, "q"), say(3, "unrelated"), bot(4, "a", answers=2)]
    assert exchanges(history) == [("q", "a")]
