"""The plugin author's path, end to end: examples/slashbots-dice installed into a fresh venv.

The venv sees this environment's packages (slashbots' dependencies, pip, setuptools, pytest)
through a .pth file, and gets slashbots (this checkout, editable) and a copy of the example
pip-installed into it with ``--no-deps --no-build-isolation``: no network, a few seconds.
The example is copied first, so building it leaves nothing behind in the checkout and its
tests run away from this repository's ``tests`` package.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sysconfig
import tomllib
import venv
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest
from stream_chat import StreamChatAsync

from slashbots import hookimpl
from slashbots.config import ConfigError
from slashbots.testing import (
    API_KEY,
    API_SECRET,
    Slashbots,
    Stream,
    final_reply,
    free_port,
    send,
    stream_standin,
    wait_until_ready,
)

pytestmark = pytest.mark.slow  # a fresh venv: skip with -m 'not slow' while developing

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "slashbots-dice"


@dataclass
class Venv:
    root: Path
    python: Path
    slashbots: Path
    example: Path  # the example's copy that was installed

    def run(self, *args: str | Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(arg) for arg in args], capture_output=True, text=True, timeout=120,
                              env=environment(env), cwd=self.root)


def environment(extra: dict[str, str] | None = None) -> dict[str, str]:
    # SLASHBOTS_* settings of whoever runs the suite must not change what these tests see.
    clean = {key: value for key, value in os.environ.items() if not key.startswith("SLASHBOTS_")}
    return {**clean, **(extra or {})}


def pip_install(python: Path, *args: str | Path) -> None:
    result = subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                             "--no-index", *map(str, args)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture(scope="module")
def example_venv(tmp_path_factory: pytest.TempPathFactory) -> Venv:
    root = tmp_path_factory.mktemp("example")
    home = root / "venv"
    venv.EnvBuilder(with_pip=False).create(home)  # pip comes from this environment, below
    python = home / "bin" / "python"
    site_packages = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                                   capture_output=True, text=True, check=True).stdout.strip()
    ours = sorted({sysconfig.get_path("purelib"), sysconfig.get_path("platlib")})
    # addsitedir (not a bare path) so this environment's own .pth files run too.
    (Path(site_packages) / "_running_environment.pth").write_text(
        "import site; " + "; ".join(f"site.addsitedir({path!r})" for path in ours) + "\n"
    )
    example = shutil.copytree(EXAMPLE, root / "slashbots-dice",
                              ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__", ".pytest_cache"))
    pip_install(python, "-e", REPO)
    pip_install(python, example)
    return Venv(root, python, home / "bin" / "slashbots", example)


def test_slashbots_declares_its_pytest_plugin() -> None:
    """Without this entry point, plugin authors' tests have no ``slashbots`` fixture."""
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    pytest11 = pyproject["project"].get("entry-points", {}).get("pytest11", {})
    assert pytest11.get("slashbots") == "slashbots.testing", (
        'pyproject.toml needs:\n[project.entry-points.pytest11]\nslashbots = "slashbots.testing"'
    )


def test_plugins_lists_the_installed_package_without_a_plugins_line(example_venv: Venv) -> None:
    result = example_venv.run(example_venv.slashbots, "plugins")
    assert result.returncode == 0, result.stderr
    assert ("dice (slashbots-dice 0.1.0)\n    hooks: register_providers, register_tools\n    providers: dice\n"
            "    tools: roll_dice\n") in result.stdout
    assert "slashbots.plugins.echo (built-in)" in result.stdout


@pytest.mark.parametrize(("allow", "listed"), [
    ("", False),  # set but empty: no installed package loads
    ("slashbots-dice", True),
    ("Slashbots_Dice", True),  # distribution names compare as pip compares them
    ("some-other-plugin, slashbots-dice", True),
    ("some-other-plugin", False),
])
def test_load_plugins_is_an_allowlist_of_distributions(example_venv: Venv, allow: str, listed: bool) -> None:
    result = example_venv.run(example_venv.slashbots, "plugins", env={"SLASHBOTS_LOAD_PLUGINS": allow})
    assert result.returncode == 0, result.stderr
    assert ("providers: dice" in result.stdout) is listed
    assert "slashbots.plugins.echo (built-in)" in result.stdout  # built-ins always load


def test_trace_plugins_logs_each_hook_call_and_the_plugin_it_reaches(example_venv: Venv) -> None:
    result = example_venv.run(example_venv.slashbots, "plugins", env={"SLASHBOTS_TRACE_PLUGINS": "1"})
    assert result.returncode == 0, result.stderr
    assert "slashbots.plugins [-] hook register_providers(register=<function" in result.stderr
    assert ") -> dice\n" in result.stderr
    assert "hook register_providers returned []" in result.stderr
    assert "hook " not in example_venv.run(example_venv.slashbots, "plugins").stderr


def test_the_examples_own_tests_pass_there(example_venv: Venv) -> None:
    # Run from outside the copy, so the module under test is the installed one.
    result = example_venv.run(example_venv.python, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                              example_venv.example / "tests")
    assert result.returncode == 0, result.stdout + result.stderr
    assert " passed" in result.stdout and "failed" not in result.stdout


@pytest.fixture
def served_from_the_venv(example_venv: Venv) -> Iterator[Stream]:
    """``slashbots serve`` in the venv, for a bots.yaml naming ``provider: dice`` and no plugin module."""
    (example_venv.root / "bots.yaml").write_text(
        f"stream: {{api_key: {API_KEY}, api_secret: {API_SECRET}}}\n"
        "bots:\n"
        "  - {command: roll, description: Rolls dice, provider: dice, channel_types: [messaging],\n"
        "     identity: {id: dice-bot, name: Dice bot}}\n"
    )
    with stream_standin() as stream:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        process = subprocess.Popen(
            [str(example_venv.slashbots), "serve", "--port", str(port)], cwd=example_venv.root,
            env=environment({"STREAM_CHAT_URL": stream.url, "SLASHBOTS_PUBLIC_URL": url}),
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        try:
            wait_until_ready(url, 30, process=process)
            yield stream
        finally:
            process.send_signal(signal.SIGTERM)
            process.communicate(timeout=30)


async def test_a_dice_bot_answers_end_to_end(served_from_the_venv: Stream) -> None:
    async with StreamChatAsync(API_KEY, API_SECRET, base_url=served_from_the_venv.url) as chat:
        await send(chat, "/roll 1d1")
    [reply] = await final_reply(served_from_the_venv.standin, "dice-bot")
    assert reply["text"] == "🎲 1"


# -- the fixture itself, on what plugin authors will run into ---------------------------------


class Long:
    async def respond(self, request):
        yield "word " * 1500  # 7,500 characters: more than one Stream message holds


class LongPlugin:
    """A plugin object rather than a module, registered for one test (as llm's tests do)."""

    @hookimpl
    def register_providers(self, register):
        register("long", lambda options: Long())


async def test_a_long_answer_comes_back_joined(slashbots: Slashbots) -> None:
    bots = slashbots.start([{"command": "long", "provider": "long"}], plugins=[LongPlugin()])
    answer = await bots.command("/long")
    assert answer.split() == ["word"] * 1500
    assert len([m for m in bots.messages() if m["user"]["id"] == "long-bot"]) == 2


async def test_commands_in_threads_and_other_channels(slashbots: Slashbots) -> None:
    bots = slashbots.start("""
        - command: echo
          provider: echo
          channel_types: [messaging, team]
    """)
    assert await bots.command("/echo hi", cid="team:ops", user="bob") == "hi"
    [sent] = [m for m in bots.messages("team:ops") if m["user"]["id"] == "bob"]
    assert await bots.command("/echo in a thread", cid="team:ops", parent_id=sent["id"]) == "in a thread"
    assert bots.messages("team:ops")[-1]["parent_id"] == sent["id"]
    assert any(call["operation"] == "CreateCommand" for call in bots.stream_calls)


async def test_misuse_fails_with_a_reason(slashbots: Slashbots) -> None:
    bots = slashbots.start([{"command": "echo", "provider": "echo"}])
    with pytest.raises(ValueError, match=r"does not start with a command of these bots \(/echo\)"):
        await bots.command("/shout hi")
    with pytest.raises(AssertionError, match=r"/echo is not enabled in 'team' channels"):
        await bots.command("/echo hi", cid="team:ops")


def test_a_whole_bots_yaml_and_its_config_errors(slashbots: Slashbots) -> None:
    with pytest.raises(ConfigError, match=r"^slashbots\.start\(\): bots\[0\]\.provider: unknown provider 'dice'"):
        slashbots.start("stream: {api_key: ignored}\nbots:\n  - {command: roll, provider: dice}\n")
