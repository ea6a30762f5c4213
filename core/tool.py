"""One tool: a plain Python function that a model may call, described and checked by pydantic.

``Tool.from_function`` reads the function once, at start-up: its name, its docstring (what
the model reads to decide when to call it) and its signature, from which pydantic builds the
JSON Schema of the arguments. A type the schema cannot express faithfully is refused then,
naming the tool, rather than surprising someone the first time a model calls it.

``Tool.call`` runs one call the model asked for, and always returns a ``ToolResult`` worded
for the model: its arguments checked against the schema first, then the function under a
time limit. Bad arguments, an exception and a timeout become results the model can act on
(apologise, retry with other arguments, answer without), so a broken tool never breaks a
reply. Only cancellation (a stop, a shutdown) goes through, and it stops an async tool too.
"""

from __future__ import annotations

import asyncio
import contextvars
import enum
import inspect
import json
import logging
import re
import threading
import time
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Callable, Literal, Mapping, Sequence

import pydantic
import pydantic_core

from slashbots.provider import CommandRequest

log = logging.getLogger("slashbots.tools")

TOOL_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")  # what OpenAI accepts as a function name
MAX_OUTPUT = 16_000  # characters of a result sent back to the model; the rest is cut (and paid for by no one)
SCALARS = (str, int, float, bool)
SUPPORTED = "str, int, float, bool, Literal, an Enum, a list of these, a pydantic model, or X | None"


class ToolDefinitionError(Exception):
    """The function cannot be a tool; the message names the tool and says why."""


class ToolError(Exception):
    """Raised by a tool for a failure it can explain: ``text`` goes back to the model as the result.

    Any other exception is treated as a bug: the model is told only that the tool failed,
    and the details go to the log (an exception's message may hold what no model should see).
    """

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text


@dataclass(frozen=True)
class ToolResult:
    """What one call gave the model: ``output`` is the text it reads; ``ok`` is false for an error."""

    output: str
    ok: bool = True


@dataclass(frozen=True, eq=False)
class Tool:
    """A function a model may call: its ``name``, ``description`` and ``parameters`` (JSON Schema)."""

    name: str
    description: str
    parameters: Mapping[str, Any]
    function: Callable[..., Any] = field(repr=False)
    plugin: str
    # Made by from_function: the model that checks arguments, its fields' parameter names,
    # and the parameter (if any) that takes the CommandRequest.
    _arguments: type[pydantic.BaseModel] = field(repr=False)
    _names: Mapping[str, str] = field(repr=False)
    _request_parameter: str | None = field(repr=False)

    @classmethod
    def from_function(cls, function: Callable[..., Any], *, name: str | None = None, plugin: str = "") -> Tool:
        """Describe ``function`` as a tool; ``ToolDefinitionError`` says why it can't be one."""
        if not callable(function):
            raise ToolDefinitionError(f"a tool must be a function, not {function!r}")
        name = name if name is not None else getattr(function, "__name__", "")
        if not isinstance(name, str) or not TOOL_NAME.fullmatch(name):
            raise ToolDefinitionError(
                f"tool name {name!r} is not allowed: use 1 to 64 letters, digits, '_' or '-' "
                "(register a lambda or a callable object with name=...)"
            )
        if inspect.isasyncgenfunction(function) or inspect.isgeneratorfunction(function):
            raise ToolDefinitionError(f"tool {name!r}: a generator can't be a tool; return the result instead")
        description = inspect.getdoc(function) or ""
        if not description.strip():
            raise ToolDefinitionError(f"tool {name!r} has no docstring: the model reads it to know when to call the tool")
        try:
            signature = inspect.signature(function)
            hints = typing.get_type_hints(function, include_extras=True)
        except (TypeError, ValueError, NameError) as exc:
            raise ToolDefinitionError(f"tool {name!r}: cannot read its signature and type hints ({exc})") from None

        fields: dict[str, Any] = {}
        names: dict[str, str] = {}
        request_parameter = None
        for parameter in signature.parameters.values():
            where = f"tool {name!r}, parameter {parameter.name!r}"
            if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD, parameter.POSITIONAL_ONLY):
                raise ToolDefinitionError(f"{where}: tools take named parameters only (no *args, **kwargs or /)")
            if parameter.name not in hints:
                raise ToolDefinitionError(f"{where} has no type hint; the model needs one ({SUPPORTED})")
            hint = hints[parameter.name]
            if hint is CommandRequest:
                if request_parameter is not None:
                    raise ToolDefinitionError(f"{where}: only one parameter may take the CommandRequest")
                request_parameter = parameter.name
                continue
            _check_type(hint, where)
            default = ... if parameter.default is inspect.Parameter.empty else parameter.default
            # Fields get neutral names and the parameter's name as alias, so any parameter name
            # works (pydantic reserves ``model_*`` and leading underscores for itself).
            key = f"p{len(fields)}"
            fields[key] = (hint, pydantic.Field(default, alias=parameter.name))
            names[key] = parameter.name
        try:
            arguments = pydantic.create_model(
                f"{name}_arguments", __config__=pydantic.ConfigDict(extra="forbid"), **fields
            )
            schema = _without_titles(arguments.model_json_schema())
        except (pydantic.PydanticUserError, pydantic_core.SchemaError, TypeError) as exc:
            raise ToolDefinitionError(f"tool {name!r}: its parameters have no JSON Schema ({exc})") from None
        return cls(name, description, schema, function, plugin, arguments, names, request_parameter)

    @property
    def is_async(self) -> bool:
        return inspect.iscoroutinefunction(self.function) or inspect.iscoroutinefunction(
            getattr(self.function, "__call__", None)
        )

    async def call(self, arguments: str | Mapping[str, Any] | None, request: CommandRequest, *,
                   timeout: float = 30.0) -> ToolResult:
        """Run one call: ``arguments`` as the model sent them (JSON text or a mapping).

        Never raises, except ``CancelledError``: every failure is a ``ToolResult`` with
        ``ok=False``, worded for the model. A sync function runs in a thread of its own; when it
        overruns ``timeout`` the thread is abandoned (Python cannot stop it) and left to finish.
        """
        started = time.monotonic()
        try:
            result = await self._call(arguments, request, timeout)
        except asyncio.CancelledError:
            _log(self, request, "cancelled", started)
            raise
        _log(self, request, "ok" if result.ok else "error", started)
        return result

    async def _call(self, arguments: str | Mapping[str, Any] | None, request: CommandRequest,
                    timeout: float) -> ToolResult:
        try:
            kwargs = self._checked(arguments)
        except _BadArguments as bad:
            return ToolResult(f"Error: {bad} Call {self.name} again with arguments that match its parameters.",
                              ok=False)
        if self._request_parameter is not None:
            kwargs[self._request_parameter] = request
        deadline = asyncio.timeout(timeout)
        try:
            async with deadline:
                if self.is_async:
                    output = await self.function(**kwargs)
                else:
                    output = await _in_thread(self.function, kwargs, self.name)
        except ToolError as error:
            return ToolResult(f"Error: {error.text}", ok=False)
        except TimeoutError:
            if not deadline.expired():  # the tool's own TimeoutError, not our limit
                return self._failed(request)
            return ToolResult(
                f"Error: {self.name} did not finish within {timeout:g} seconds and was stopped. "
                "Answer without it, and say that this information is unavailable right now.",
                ok=False,
            )
        except Exception:
            return self._failed(request)
        return ToolResult(_as_text(output))

    def _failed(self, request: CommandRequest) -> ToolResult:
        log.exception("tool %s (from %s) failed for /%s", self.name, self.plugin or "?", request.command)
        return ToolResult(
            f"Error: {self.name} failed with an internal error. Don't call it again for this question; "
            "answer without it, and say that this information is unavailable right now.",
            ok=False,
        )

    def _checked(self, arguments: str | Mapping[str, Any] | None) -> dict[str, Any]:
        """The function's keyword arguments, validated; ``_BadArguments`` says what is wrong, for the model."""
        if arguments is None or (isinstance(arguments, str) and not arguments.strip()):
            arguments = {}  # a call without parameters may come with no arguments at all
        elif isinstance(arguments, str):
            try:
                arguments = json.loads(arguments)
            except ValueError as exc:
                raise _BadArguments(f"the arguments are not valid JSON ({exc}).") from None
        if not isinstance(arguments, Mapping):
            raise _BadArguments(f"the arguments must be a JSON object, not {type(arguments).__name__}.")
        try:
            checked = self._arguments.model_validate(dict(arguments))
        except pydantic.ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(map(str, error['loc'])) or 'arguments'}: {error['msg']}"
                for error in exc.errors(include_url=False)[:5]
            )
            raise _BadArguments(f"the arguments do not match the parameters of {self.name}: {problems}.") from None
        return {parameter: getattr(checked, key) for key, parameter in self._names.items()}


async def call_tool(tools: Sequence[Tool], name: str, arguments: str | Mapping[str, Any] | None,
                    request: CommandRequest, *, timeout: float = 30.0) -> ToolResult:
    """Run the call a model made to ``name``, among the ``tools`` it was offered (see ``Tool.call``)."""
    for tool in tools:
        if tool.name == name:
            return await tool.call(arguments, request, timeout=timeout)
    offered = ", ".join(tool.name for tool in tools) or "none"
    return ToolResult(f"Error: there is no tool named {name!r}. The tools you can call are: {offered}.", ok=False)


class _BadArguments(Exception):
    """The model's arguments don't fit the tool; the message is for the model."""


def _check_type(hint: Any, where: str) -> None:
    """Refuse types outside those the issue promises to support, naming the parameter."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Annotated:
        return _check_type(args[0], where)
    if hint in SCALARS or (isinstance(hint, type) and issubclass(hint, (enum.Enum, pydantic.BaseModel))):
        return None
    if origin is Literal and all(isinstance(value, (*SCALARS, enum.Enum)) or value is None for value in args):
        return None
    if origin is list and args:
        return _check_type(args[0], where)
    if origin in (typing.Union, types.UnionType) and type(None) in args and len(args) == 2:
        return _check_type(next(arg for arg in args if arg is not type(None)), where)
    raise ToolDefinitionError(f"{where} has type {_type_name(hint)}, which tools can't take; use {SUPPORTED}")


def _type_name(hint: Any) -> str:
    return hint.__name__ if isinstance(hint, type) else repr(hint).replace("typing.", "")


def _without_titles(schema: Any) -> Any:
    """pydantic's schema minus its generated ``title``s: tokens the model pays for and learns nothing from.

    ``properties`` and ``$defs`` map names to schemas, so a parameter called ``title`` stays.
    """
    if isinstance(schema, list):
        return [_without_titles(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    return {
        key: ({name: _without_titles(value) for name, value in item.items()}
              if key in ("properties", "$defs") and isinstance(item, dict) else _without_titles(item))
        for key, item in schema.items()
        if key != "title"
    }


def _as_text(output: Any) -> str:
    """A result as the model reads it: text as it is, anything else as JSON, cut at ``MAX_OUTPUT``."""
    if output is None:
        text = "Done (the tool returned nothing)."
    elif isinstance(output, str):
        text = output
    else:
        text = pydantic_core.to_json(output, fallback=str).decode()
    if len(text) > MAX_OUTPUT:
        text = text[:MAX_OUTPUT] + f"\n[cut: the output was {len(text):,} characters]"
    return text


def _in_thread(function: Callable[..., Any], kwargs: dict[str, Any], name: str) -> asyncio.Future[Any]:
    """Run a sync tool in a daemon thread of its own.

    Not ``asyncio.to_thread``: a hung tool would hold one of the default executor's few
    workers (which DNS lookups share) for good, and its non-daemon threads keep the process
    from exiting, so one stuck tool could stall every reply and outlast shutdown.
    """
    loop = asyncio.get_running_loop()
    future: asyncio.Future[Any] = loop.create_future()
    context = contextvars.copy_context()  # the reply's request id follows the tool into its log lines

    def settle(outcome: Any, failed: bool) -> None:
        if future.done():
            return  # abandoned: it timed out or the reply was stopped
        if failed:
            future.set_exception(outcome)
        else:
            future.set_result(outcome)

    def run() -> None:
        try:
            outcome, failed = context.run(function, **kwargs), False
        except Exception as exc:
            outcome, failed = exc, True
        try:
            loop.call_soon_threadsafe(settle, outcome, failed)
        except RuntimeError:
            pass  # the event loop has closed: nobody is waiting any more

    threading.Thread(target=run, name=f"slashbots tool {name}", daemon=True).start()
    return future


def _log(tool: Tool, request: CommandRequest, outcome: str, started: float) -> None:
    # Arguments and output stay out of the log: they carry what users wrote in their channel.
    elapsed = time.monotonic() - started
    log.info(
        "tool %s for /%s in %s for %s: %s, %.2fs", tool.name, request.command, request.cid, request.user_id,
        outcome, elapsed,
        extra={"fields": {"tool": tool.name, "command": request.command, "cid": request.cid,
                          "user_id": request.user_id, "outcome": outcome, "seconds": round(elapsed, 3)}},
    )
