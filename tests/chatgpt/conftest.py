"""Fixtures for the ChatGPT provider tests: the OpenAI stand-in on a real socket, and requests."""

from __future__ import annotations

from typing import Any, AsyncIterator, Callable, Iterator

import pytest
import pytest_asyncio

from slashbots.plugins.chatgpt import ChatGPT
from slashbots.sandbox.loopback import LoopbackServer
from tests.chatgpt.helpers import TEST_KEY
from tests.support.openai_standin import OpenAIStandIn


@pytest.fixture(scope="session")
def standin_server() -> Iterator[tuple[OpenAIStandIn, str]]:
    standin = OpenAIStandIn()
    with LoopbackServer(standin.app) as server:
        yield standin, server.url


@pytest.fixture
def standin(standin_server: tuple[OpenAIStandIn, str]) -> OpenAIStandIn:
    standin_server[0].reset()
    return standin_server[0]


@pytest.fixture
def standin_url(standin_server: tuple[OpenAIStandIn, str]) -> str:
    return standin_server[1]


@pytest.fixture(autouse=True)
def no_openai_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "AZURE_OPENAI_API_KEY"):
        monkeypatch.delenv(name, raising=False)


@pytest_asyncio.fixture
async def make_provider(standin: OpenAIStandIn, standin_url: str) -> AsyncIterator[Callable[..., ChatGPT]]:
    """``make_provider(**options)``: a ChatGPT provider aimed at the stand-in, closed after the test."""
    made: list[ChatGPT] = []

    def make(**options: Any) -> ChatGPT:
        options = {"base_url": f"{standin_url}/v1", "api_key": TEST_KEY, **options}
        provider = ChatGPT(options)
        made.append(provider)
        return provider

    yield make
    for provider in made:
        await provider.aclose()
