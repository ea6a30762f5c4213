"""The plugin manager: built-ins, installed packages' entry points, and modules named in bots.yaml.

Built-in plugins are loaded exactly like third-party ones, by module name; nothing here
knows what any of them does.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.metadata
import logging
import os
import re
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import pluggy

from slashbots import hookspecs
from slashbots.config import Config, ConfigError, thaw
from slashbots.provider import Provider, ProviderFactory

log = logging.getLogger("slashbots.plugins")

BUILTIN_PLUGINS = ("slashbots.plugins.default_error_reply", "slashbots.plugins.echo", "slashbots.plugins.chatgpt",
                   "slashbots.plugins.tools")
ENTRY_POINT_GROUP = "slashbots"


class PluginError(Exception):
    """A plugin could not be loaded, or two plugins claim the same provider name."""


@dataclass(frozen=True)
class ProviderEntry:
    name: str
    factory: ProviderFactory
    plugin: str


class PluginManager(pluggy.PluginManager):
    """pluggy's manager, remembering which installed package each plugin came from."""

    def __init__(self) -> None:
        super().__init__("slashbots")
        self.add_hookspecs(hookspecs)
        self.packages: dict[str, str] = {}  # plugin name -> "distribution version"

    def register(self, plugin: object, name: str | None = None) -> str | None:
        """Register ``plugin``, refusing hooks that would otherwise be silently ignored.

        pluggy skips a function named like a hook but not marked ``@hookimpl``, and keeps a
        marked function whose name matches no hook (a typo such as ``register_provider``)
        without ever calling it: either way the plugin does nothing and nobody is told.
        """
        known = set(_hook_names(self))
        label = name or getattr(plugin, "__name__", None) or type(plugin).__name__
        for attribute in known:
            function = getattr(plugin, attribute, None)
            if callable(function) and self.parse_hookimpl_opts(plugin, attribute) is None:
                raise PluginError(f"plugin {label!r}: {attribute}() is not marked @hookimpl, so slashbots would never "
                                  "call it; add `from slashbots import hookimpl` and `@hookimpl` above it")
        registered = super().register(plugin, name)
        for caller in self.get_hookcallers(plugin) or []:
            if not caller.has_spec():
                self.unregister(plugin)
                close = difflib.get_close_matches(caller.name, known, n=1)
                hint = f"did you mean {close[0]!r}? " if close else ""
                raise PluginError(f"plugin {label!r} implements {caller.name!r}, which is not a slashbots hook; "
                                  f"{hint}hooks are: {', '.join(sorted(known))}")
        return registered


def _hook_names(pm: pluggy.PluginManager) -> list[str]:
    return [name for name, caller in vars(pm.hook).items() if isinstance(caller, pluggy.HookCaller) and caller.has_spec()]


def plugin_manager(config: Config | None = None, *, entry_points: bool = True) -> PluginManager:
    """A fresh manager with the built-ins, installed packages and ``config.plugins`` registered.

    ``SLASHBOTS_LOAD_PLUGINS`` (comma-separated distribution names) limits which installed
    packages load; set but empty, none do. ``SLASHBOTS_TRACE_PLUGINS=1`` logs every hook call.
    ``entry_points=False`` skips installed packages altogether, so a test sees only the
    plugins it names, whatever else is installed.
    """
    pm = PluginManager()
    for name in BUILTIN_PLUGINS:
        pm.register(importlib.import_module(name), name)
    if entry_points:
        _load_entry_points(pm)
    if config is not None:
        for index, module_name in enumerate(config.plugins):
            path = f"plugins[{index}]"
            try:
                module = importlib.import_module(module_name)
            except Exception as exc:  # any import-time failure is the operator's to fix
                raise ConfigError(config.source, path, f"cannot import {module_name!r}: {exc}", config.where(path)) from None
            if pm.is_registered(module):
                continue
            pm.register(module, module_name)
    if os.environ.get("SLASHBOTS_TRACE_PLUGINS") == "1":
        pm.add_hookcall_monitoring(_trace_call, _trace_result)
    return pm


def _trace_call(hook_name: str, impls: Sequence[pluggy.HookImpl], kwargs: Mapping[str, Any]) -> None:
    # Unlike pluggy's own tracing, this names the plugins a call reaches: the question when debugging.
    arguments = ", ".join(f"{name}={value!r}" for name, value in kwargs.items())
    plugins = ", ".join(impl.plugin_name for impl in impls) or "no plugin"
    log.info("hook %s(%s) -> %s", hook_name, arguments, plugins)


def _trace_result(outcome: pluggy.Result[Any], hook_name: str, impls: Sequence[pluggy.HookImpl],
                  kwargs: Mapping[str, Any]) -> None:
    if outcome.exception is None:
        log.info("hook %s returned %r", hook_name, outcome.get_result())
    else:
        log.info("hook %s raised %r", hook_name, outcome.exception)


def _distribution_key(name: str) -> str:
    """PEP 503 normalisation, so ``slashbots_dice`` and ``Slashbots-Dice`` name the same package."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _load_entry_points(pm: PluginManager) -> None:
    allowed = os.environ.get("SLASHBOTS_LOAD_PLUGINS")
    allow = None if allowed is None else {_distribution_key(name.strip()) for name in allowed.split(",") if name.strip()}
    for entry_point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        distribution = entry_point.dist.name if entry_point.dist else entry_point.name
        if allow is not None and _distribution_key(distribution) not in allow:
            continue
        if pm.get_plugin(entry_point.name) is not None:
            continue
        try:
            plugin = entry_point.load()
        except Exception as exc:
            raise PluginError(f"plugin {entry_point.name!r} from package {distribution!r} failed to load: {exc}") from exc
        pm.register(plugin, entry_point.name)
        version = entry_point.dist.version if entry_point.dist else "?"
        pm.packages[entry_point.name] = f"{distribution} {version}"


def providers(pm: pluggy.PluginManager) -> dict[str, ProviderEntry]:
    """Every registered provider by name; two plugins registering one name is an error."""
    found: dict[str, ProviderEntry] = {}
    for impl in pm.hook.register_providers.get_hookimpls():
        plugin = impl.plugin_name

        def register(name: str, factory: ProviderFactory, plugin: str = plugin) -> None:
            if not isinstance(name, str) or not name:
                raise PluginError(f"plugin {plugin!r} registered a provider with no name")
            if not callable(factory):
                raise PluginError(f"plugin {plugin!r} registered provider {name!r} with a factory that is not callable")
            if name in found:
                raise PluginError(
                    f"provider {name!r} is registered by both {found[name].plugin!r} and {plugin!r}; "
                    "uninstall one, or limit plugins with SLASHBOTS_LOAD_PLUGINS"
                )
            found[name] = ProviderEntry(name, factory, plugin)

        # One plugin at a time, so each name is credited to the plugin that registered it; through
        # pluggy rather than impl.function, so SLASHBOTS_TRACE_PLUGINS sees the call.
        others = [other for other in pm.get_plugins() if other is not impl.plugin]
        pm.subset_hook_caller("register_providers", remove_plugins=others)(register=register)
    return found


def build_providers(config: Config, pm: pluggy.PluginManager) -> dict[str, Provider]:
    """One provider per bot, built from its ``options:``; errors point at the bot in bots.yaml."""
    available = providers(pm)
    built: dict[str, Provider] = {}
    for index, bot in enumerate(config.bots):
        entry = available.get(bot.provider)
        if entry is None:
            path = f"bots[{index}].provider"
            raise ConfigError(config.source, path, _unknown_provider(bot.provider, available, pm), config.where(path))
        try:
            provider = entry.factory(thaw(bot.options))
        except (ValueError, TypeError, KeyError) as exc:
            path = f"bots[{index}].options"
            raise ConfigError(config.source, path, f"{bot.provider}: {exc}", config.where(path)) from None
        if not callable(getattr(provider, "respond", None)):
            raise PluginError(f"provider {bot.provider!r} from {entry.plugin!r} has no respond(request) method")
        built[bot.command] = provider
    return built


def _unknown_provider(name: str, available: Mapping[str, ProviderEntry], pm: pluggy.PluginManager) -> str:
    """What to say when bots.yaml names a provider no plugin registered, and how to get one."""
    credited = {entry.plugin for entry in available.values()}
    idle = sorted(plugin for plugin, _ in pm.list_name_plugin() if plugin not in credited)
    words = f"unknown provider {name!r}; expected one of: {', '.join(sorted(available)) or 'none'}"
    if idle:
        words += f" (loaded plugins that registered no provider: {', '.join(idle)})"
    return (words + ". A provider comes from a plugin: `pip install` a package that declares a `slashbots` entry "
            "point, or name your module under `plugins:` in bots.yaml; `slashbots plugins` lists what is loaded")


async def close_providers(built: Mapping[str, Provider]) -> None:
    for command, provider in built.items():
        close: Any = getattr(provider, "aclose", None)
        if close is None:
            continue
        try:
            await close()
        except Exception:
            log.exception("provider for /%s failed to close", command)
