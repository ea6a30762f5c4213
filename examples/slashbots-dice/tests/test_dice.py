"""slashbots-dice, tested with the `slashbots` fixture that comes with slashbots."""

import re

import pytest

from slashbots.config import ConfigError
from slashbots.testing import call

ROLL = {"command": "roll", "provider": "dice", "options": {"max_dice": 3}}


@pytest.fixture
def bots(slashbots):
    return slashbots.start([ROLL], plugins=["slashbots_dice"])


async def test_a_one_sided_die_rolls_one(bots):
    assert await bots.command("/roll 1d1") == "🎲 1"


async def test_the_answer_adds_up_the_dice_and_the_bonus(bots):
    assert await bots.command("/roll 3d1+2") == "🎲 5 (1 + 1 + 1 +2)"
    assert await bots.command("/roll 2d1 - 1") == "🎲 1 (1 + 1 -1)"


async def test_each_die_lands_on_one_of_its_sides(bots):
    answer = await bots.command("/roll 3d6")
    total, *dice = map(int, re.fullmatch(r"🎲 (\d+) \((\d) \+ (\d) \+ (\d)\)", answer).groups())
    assert all(1 <= die <= 6 for die in dice) and total == sum(dice)


async def test_no_notation_rolls_one_six_sided_die(bots):
    assert await bots.command("/roll") in {f"🎲 {n}" for n in range(1, 7)}


async def test_bad_notation_is_refused_with_an_example(bots):
    assert await bots.command("/roll a handful") == "I roll dice written like 2d6+1. Try: /roll 2d6+1"


async def test_more_dice_than_max_dice_are_refused(bots):
    assert await bots.command("/roll 4d6") == "I roll 1 to 3 dice of 1 to 1000 sides."
    assert await bots.command("/roll 1d1001") == "I roll 1 to 3 dice of 1 to 1000 sides."


def test_a_bad_option_stops_start_up_and_points_at_the_bot(slashbots):
    bad = {**ROLL, "options": {"max_dice": "lots"}}
    with pytest.raises(ConfigError, match=r"bots\[0\]\.options: dice: dice takes one option, max_dice"):
        slashbots.start([bad], plugins=["slashbots_dice"])


async def test_once_installed_slashbots_finds_it_by_its_entry_point(slashbots):
    bots = slashbots.start([ROLL], entry_points=True)
    assert await bots.command("/roll 1d1") == "🎲 1"


# The roll_dice tool, called by a chatgpt bot whose model is scripted: first it calls the
# tool, then it answers.

async def test_a_chatgpt_bot_rolls_with_the_tool(slashbots):
    model = slashbots.model(call("roll_dice", sides=1, count=2), "You rolled 2.")
    gpt = {"command": "gpt", "provider": "chatgpt", "tools": ["roll_dice"], "options": model.options}
    bots = slashbots.start([gpt], plugins=["slashbots_dice"])
    assert await bots.command("/gpt roll two d1") == "🔧 roll_dice(sides=1, count=2)\n\nYou rolled 2."
    assert model.tool_results == [("roll_dice", "🎲 2 (1 + 1)")]


async def test_the_model_is_told_what_the_tool_cannot_roll(slashbots):
    model = slashbots.model(call("roll_dice", sides=0), "Dice need at least one side.")
    gpt = {"command": "gpt", "provider": "chatgpt", "tools": ["roll_dice"], "options": model.options}
    bots = slashbots.start([gpt], plugins=["slashbots_dice"])
    await bots.command("/gpt roll a d0")
    assert model.tool_results == [("roll_dice", "Error: roll_dice rolls 1 to 10 dice of 1 to 1000 sides")]


async def test_the_bot_answers_mentions_and_follow_ups(slashbots):
    bots = slashbots.start([{"command": "roll", "provider": "dice", "mentions": True, "threads": True}],
                           plugins=["slashbots_dice"])
    answer = await bots.message("@Roll bot 1d1")  # the provider gets args "1d1", trigger "mention"
    assert answer == "🎲 1"
    assert await bots.reply(answer, "1d1") == "🎲 1"  # in the bot's thread: trigger "thread"
    assert await bots.message("just chatting") is None
