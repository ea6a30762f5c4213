"""slashbots.testing's scripted model, as a plugin author uses it: a script of turns, played to a bot."""

from __future__ import annotations

import httpx

from slashbots import hookimpl
from slashbots.testing import Slashbots, call, scripted_model


async def weather(city: str) -> str:
    """The weather in a city."""
    return f"sunny in {city}"


class Weather:
    @hookimpl
    def register_tools(self, register):
        register(weather)


async def test_parallel_calls_then_text_and_what_the_tools_gave(slashbots: Slashbots) -> None:
    model = slashbots.model([call("weather", city="Oslo"), call("current_time", zone="Europe/Oslo")],
                            "Sunny in Oslo, and it is noon.")
    gpt = {"command": "gpt", "provider": "chatgpt", "tools": ["weather", "current_time"], "options": model.options}
    bots = slashbots.start([gpt], plugins=[Weather()])
    answer = await bots.command("/gpt weather and time in Oslo?")
    assert answer == ('🔧 weather(city="Oslo")\n🔧 current_time(zone="Europe/Oslo")\n\n'
                      "Sunny in Oslo, and it is noon.")
    (first_name, first), (second_name, second) = model.tool_results
    assert (first_name, first) == ("weather", "sunny in Oslo")
    assert second_name == "current_time" and "zone Europe/Oslo" in second
    assert [len(body["tools"]) for body in model.requests] == [2, 2]


async def test_a_bot_that_asks_more_often_than_scripted_says_so(slashbots: Slashbots) -> None:
    model = slashbots.model()
    bots = slashbots.start([{"command": "gpt", "provider": "chatgpt", "options": model.options}])
    assert await bots.command("/gpt hello") == "[scripted model: the script has no turn left for this request]"
    assert "tools" not in model.requests[0]


def test_it_serves_outside_the_fixture_too() -> None:
    with scripted_model("Hi there.") as model:
        response = httpx.post(f"{model.url}/v1/chat/completions", json={"messages": [], "stream": True})
    assert response.headers["content-type"].startswith("text/event-stream")
    assert '"content": " there."' in response.text and response.text.endswith("data: [DONE]\n\n")
