"""The plugin registers like any third-party plugin, and bad options surface as config errors."""

from __future__ import annotations

from typing import Any

import pluggy
import pytest

import slashbots.plugins.chatgpt
from slashbots import hookspecs
from slashbots.config import ConfigError, parse_config
from slashbots.plugin_manager import build_providers, plugin_manager
from slashbots.plugins.chatgpt import ChatGPT

BOTS_YAML = """\
stream: {api_key: k, api_secret: s}
bots:
  - command: gpt
    description: Ask GPT
    provider: chatgpt
    channel_types: [messaging]
    identity: {id: chatgpt-bot, name: ChatGPT bot}
    options:
      model: ${OPENAI_MODEL:-gpt-4o-mini}
      temperature: ${GPT_TEMPERATURE:-0.3}
"""


def test_register_providers_hook() -> None:
    pm = pluggy.PluginManager("slashbots")
    pm.add_hookspecs(hookspecs)
    pm.register(slashbots.plugins.chatgpt)
    registered: dict[str, Any] = {}
    pm.hook.register_providers(register=lambda name, factory: registered.__setitem__(name, factory))
    assert registered == {"chatgpt": ChatGPT}


def test_built_from_bots_yaml() -> None:
    config = parse_config(BOTS_YAML, "bots.yaml", {})
    provider = build_providers(config, plugin_manager())["gpt"]
    assert isinstance(provider, ChatGPT)
    assert (provider.settings.model, provider.settings.temperature) == ("gpt-4o-mini", 0.3)


def test_bad_option_points_at_the_bot() -> None:
    config = parse_config(BOTS_YAML.replace("model:", "modle:"), "bots.yaml", {})
    with pytest.raises(ConfigError) as caught:
        build_providers(config, plugin_manager())
    assert "bots[0].options" in str(caught.value) and "did you mean 'model'" in str(caught.value)
