"""The bot's options: defaults, environment, Azure, and errors that name the option."""

from __future__ import annotations

from typing import Any

import pytest

from slashbots.plugins.chatgpt import ChatGPT
from slashbots.plugins.chatgpt.options import DEFAULT_SYSTEM_PROMPT, parse_options


def test_defaults() -> None:
    s = parse_options({}, environ={})
    assert s.model == "gpt-4o-mini"
    assert s.system_prompt == DEFAULT_SYSTEM_PROMPT
    assert s.base_url == "https://api.openai.com/v1"
    assert s.chat_url == "https://api.openai.com/v1/chat/completions"
    assert s.moderation_url == "https://api.openai.com/v1/moderations"
    assert s.api_key == ""
    assert (s.temperature, s.max_completion_tokens, s.max_tokens_param) == (None, None, "max_completion_tokens")
    assert (s.connect_timeout, s.read_timeout, s.max_retries) == (5.0, 120.0, 2)
    assert (s.memory_turns, s.memory_chars) == (10, 12_000)
    assert s.moderation and not s.moderation_fail_open
    assert s.moderation_model == "omni-moderation-latest"
    assert s.chat_key_required and s.service == "OpenAI"
    assert (s.max_tool_rounds, s.tool_timeout, s.show_tool_calls) == (5, 30.0, True)


def test_none_options_and_null_values_mean_defaults() -> None:
    assert parse_options(None, environ={}) == parse_options({"model": None, "temperature": None}, environ={})


def test_environment() -> None:
    s = parse_options({}, environ={"OPENAI_API_KEY": " sk-env ", "OPENAI_BASE_URL": "http://localhost:11434/v1/"})
    assert s.api_key == "sk-env"
    assert s.base_url == "http://localhost:11434/v1"
    assert s.moderation_api_key == "sk-env"
    assert not s.chat_key_required and s.service == "the model server"


def test_options_beat_environment() -> None:
    s = parse_options(
        {"api_key": "sk-option", "base_url": "https://example.org/v1"},
        environ={"OPENAI_API_KEY": "sk-env", "OPENAI_BASE_URL": "http://localhost:1/v1"},
    )
    assert (s.api_key, s.base_url) == ("sk-option", "https://example.org/v1")


def test_empty_api_key_option_falls_back_to_environment() -> None:
    # bots.yaml's `api_key: ${OPENAI_API_KEY:-}` gives "" when unset.
    assert parse_options({"api_key": ""}, environ={"OPENAI_API_KEY": "sk-env"}).api_key == "sk-env"


def test_everything_set() -> None:
    s = parse_options(
        {
            "model": "gpt-4o", "system_prompt": "", "temperature": 0, "max_completion_tokens": 500,
            "max_tokens_param": "max_tokens", "timeout": {"connect": 2, "read": 30.5}, "max_retries": 0,
            "memory_turns": 0, "memory_chars": 100, "moderation": False, "moderation_model": "text-moderation-latest",
            "moderation_fail_open": True, "max_tool_rounds": 2, "tool_timeout": 2.5, "show_tool_calls": False,
        },
        environ={},
    )
    assert (s.max_tool_rounds, s.tool_timeout, s.show_tool_calls) == (2, 2.5, False)
    assert s.system_prompt == ""
    assert (s.temperature, s.max_completion_tokens, s.max_tokens_param) == (0.0, 500, "max_tokens")
    assert (s.connect_timeout, s.read_timeout, s.max_retries) == (2.0, 30.5, 0)
    assert (s.memory_turns, s.memory_chars, s.moderation, s.moderation_fail_open) == (0, 100, False, True)


def test_values_from_environment_variables_arrive_as_strings() -> None:
    # bots.yaml fills ${VAR} into strings; an unset one gives "".
    s = parse_options(
        {"temperature": "0.7", "max_completion_tokens": " 400 ", "moderation": "False",
         "moderation_fail_open": "TRUE", "timeout": "30", "memory_turns": "0", "model": "",
         "base_url": "", "api_key": "", "system_prompt": "Hi", "max_tool_rounds": "3", "tool_timeout": "",
         "show_tool_calls": "false"},
        environ={},
    )
    assert (s.max_tool_rounds, s.tool_timeout, s.show_tool_calls) == (3, 30.0, False)
    assert (s.temperature, s.max_completion_tokens, s.moderation, s.moderation_fail_open) == (0.7, 400, False, True)
    assert (s.read_timeout, s.memory_turns, s.model, s.base_url) == (30.0, 0, "gpt-4o-mini", "https://api.openai.com/v1")
    assert parse_options({"system_prompt": ""}, environ={}).system_prompt == ""  # means: no system message


def test_single_timeout_sets_both() -> None:
    s = parse_options({"timeout": 9}, environ={})
    assert (s.connect_timeout, s.read_timeout) == (9.0, 9.0)


def test_moderation_elsewhere_takes_the_openai_key() -> None:
    s = parse_options(
        {"base_url": "http://localhost:8000/v1", "api_key": "local-token",
         "moderation_base_url": "https://api.openai.com/v1/"},
        environ={"OPENAI_API_KEY": "sk-openai"},
    )
    assert s.moderation_url == "https://api.openai.com/v1/moderations"
    assert (s.api_key, s.moderation_api_key) == ("local-token", "sk-openai")
    assert s.moderation_key_required and not s.chat_key_required
    assert parse_options({"moderation_api_key": "sk-mod"}, environ={}).moderation_api_key == "sk-mod"


def test_azure() -> None:
    s = parse_options(
        {"azure_deployment": "gpt4o-prod", "api_version": "2024-10-21",
         "base_url": "https://my-resource.openai.azure.com/"},
        environ={"AZURE_OPENAI_API_KEY": "azure-key", "OPENAI_API_KEY": "sk-not-this"},
    )
    assert s.chat_url == "https://my-resource.openai.azure.com/openai/deployments/gpt4o-prod/chat/completions"
    assert s.chat_params == {"api-version": "2024-10-21"}
    assert s.api_key == "azure-key"
    assert s.model == "gpt4o-prod"
    assert not s.moderation  # Azure has no /moderations; its content filter is built in
    assert s.chat_key_required and s.service == "Azure OpenAI"


def test_azure_with_moderation_at_openai() -> None:
    s = parse_options(
        {"azure_deployment": "d", "api_version": "2024-10-21", "base_url": "https://r.openai.azure.com",
         "moderation_base_url": "https://api.openai.com/v1"},
        environ={"AZURE_OPENAI_API_KEY": "azure-key", "OPENAI_API_KEY": "sk-openai"},
    )
    assert s.moderation and s.moderation_api_key == "sk-openai"


def test_repr_hides_keys() -> None:
    assert "sk-secret" not in repr(parse_options({"api_key": "sk-secret"}, environ={}))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"modle": "gpt-4o"}, "unknown option 'modle' (did you mean 'model'?)"),
        ({"colour": "red"}, "unknown option 'colour'"),
        ({"model": 4}, "model must be a string, not 4"),
        ({"model": ["gpt-4o"]}, "model must be a string, not a list"),
        ({"temperature": "hot"}, "temperature must be a number, not 'hot'"),
        ({"temperature": True}, "temperature must be a number, not a boolean"),
        ({"temperature": 3}, "temperature must be between 0 and 2, not 3"),
        ({"temperature": "nan"}, "temperature must be a number, not 'nan'"),
        ({"max_completion_tokens": 0}, "max_completion_tokens must be at least 1"),
        ({"max_completion_tokens": 1.5}, "max_completion_tokens must be a whole number"),
        ({"max_completion_tokens": "1.5"}, "max_completion_tokens must be a whole number"),
        ({"max_tokens_param": "tokens"}, "max_tokens_param must be 'max_completion_tokens' or 'max_tokens'"),
        ({"max_retries": -1}, "max_retries must be at least 0"),
        ({"memory_turns": "ten"}, "memory_turns must be a whole number"),
        ({"memory_chars": [1]}, "memory_chars must be a whole number, not a list"),
        ({"moderation": "no"}, "moderation must be true or false, not 'no'"),
        ({"moderation_fail_open": 1}, "moderation_fail_open must be true or false"),
        ({"moderation_fail_open": "yes"}, "moderation_fail_open must be true or false, not 'yes'"),
        ({"system_prompt": 42}, "system_prompt must be a string, not 42"),
        ({"timeout": 0}, "timeout must be a number of seconds above 0"),
        ({"timeout": {"connect": 1, "total": 3}}, "timeout has unknown key 'total'"),
        ({"timeout": {"read": "slow"}}, "timeout.read must be a number of seconds above 0"),
        ({"max_tool_rounds": 0}, "max_tool_rounds must be at least 1, not 0"),
        ({"max_tool_rounds": "many"}, "max_tool_rounds must be a whole number"),
        ({"tool_timeout": 0}, "tool_timeout must be a number of seconds above 0"),
        ({"tool_timeout": "soon"}, "tool_timeout must be a number of seconds above 0, not 'soon'"),
        ({"show_tool_calls": "sometimes"}, "show_tool_calls must be true or false, not 'sometimes'"),
        ({"base_url": "localhost:11434"}, "base_url must be an http:// or https:// URL"),
        ({"base_url": "https://x.org/v1?x=1"}, "base_url must not have a query or fragment"),
        ({"api_key": 123}, "api_key must be a string"),
        ({"azure_deployment": "d", "base_url": "https://r.openai.azure.com"}, "api_version is required"),
        ({"api_version": "2024-10-21"}, "api_version only applies to Azure"),
        ({"azure_deployment": "d", "api_version": "v"}, "base_url is required with azure_deployment"),
        (
            {"azure_deployment": "d", "api_version": "v", "base_url": "https://r.openai.azure.com", "moderation": True},
            "moderation on Azure needs moderation_base_url",
        ),
    ],
)
def test_bad_options_name_the_option(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError) as caught:
        ChatGPT(options)
    assert message in str(caught.value)


def test_bad_environment_url_is_reported() -> None:
    with pytest.raises(ValueError, match="OPENAI_BASE_URL"):
        parse_options({}, environ={"OPENAI_BASE_URL": "api.openai.com"})


def test_missing_key_is_not_a_startup_error() -> None:
    ChatGPT({"api_key": ""})  # the bot explains when asked instead
