"""The tools installed plugins registered, and which of them each bot's model may call.

Every plugin may register tools (the ``register_tools`` hook); a bot offers its model only
those its ``tools:`` in bots.yaml names, and only if its provider can call tools at all:
a provider says so by ``supports_tools = True`` on its factory (the class, usually).
Mistakes stop start-up, naming the tool, the plugins or the line in bots.yaml.
"""

from __future__ import annotations

from typing import Any, Callable

import pluggy

from slashbots.config import Config, ConfigError
from slashbots.plugin_manager import PluginError, providers
from slashbots.tool import Tool, ToolDefinitionError


def tools(pm: pluggy.PluginManager) -> dict[str, Tool]:
    """Every registered tool by name; a tool that can't be described, or a name taken twice, is an error."""
    found: dict[str, Tool] = {}
    for impl in pm.hook.register_tools.get_hookimpls():
        plugin = impl.plugin_name

        def register(function: Callable[..., Any], name: str | None = None, plugin: str = plugin) -> None:
            try:
                tool = Tool.from_function(function, name=name, plugin=plugin)
            except ToolDefinitionError as exc:
                raise PluginError(f"plugin {plugin!r}: {exc}") from None
            if tool.name in found:
                raise PluginError(
                    f"tool {tool.name!r} is registered by both {found[tool.name].plugin!r} and {plugin!r}; "
                    "register one under another name (register(function, name=...)), uninstall one, "
                    "or limit plugins with SLASHBOTS_LOAD_PLUGINS"
                )
            found[tool.name] = tool

        # One plugin at a time, as for providers: each tool is credited to the plugin that registered it.
        others = [other for other in pm.get_plugins() if other is not impl.plugin]
        pm.subset_hook_caller("register_tools", remove_plugins=others)(register=register)
    return found


def bot_tools(config: Config, pm: pluggy.PluginManager) -> dict[str, tuple[Tool, ...]]:
    """Each bot's tools, by command; errors point at the bot's ``tools:`` in bots.yaml."""
    installed = tools(pm)
    available = providers(pm)
    chosen: dict[str, tuple[Tool, ...]] = {}
    for index, bot in enumerate(config.bots):
        if not bot.tools:
            continue
        entry = available.get(bot.provider)
        if entry is not None and getattr(entry.factory, "supports_tools", False) is not True:
            path = f"bots[{index}].tools"
            able = sorted(name for name, other in available.items()
                          if getattr(other.factory, "supports_tools", False) is True)
            raise ConfigError(
                config.source, path,
                f"provider {bot.provider!r} does not call tools; providers that do: {', '.join(able) or 'none'}",
                config.where(path),
            )
        for position, name in enumerate(bot.tools):
            if name not in installed:
                path = f"bots[{index}].tools[{position}]"
                raise ConfigError(
                    config.source, path,
                    f"unknown tool {name!r}; installed tools: {', '.join(sorted(installed)) or 'none'}",
                    config.where(path),
                )
        chosen[bot.command] = tuple(installed[name] for name in bot.tools)
    return chosen
