"""slashbots-dice: a /roll bot for slashbots (`/roll 2d6+1`), and a roll_dice tool that LLM bots may call."""

import random
import re

from slashbots import Refusal, ToolError, hookimpl

DICE = re.compile(r"(\d{0,9})d(\d{1,9})([+-]\d{1,9})?")  # [count]d<sides>[+-bonus], digits capped
MAX_SIDES = 1000


def roll(count, sides, bonus=0):
    rolls = [random.randint(1, sides) for _ in range(count)]
    detail = " + ".join(map(str, rolls)) + (f" {bonus:+d}" if bonus else "")
    return f"🎲 {sum(rolls) + bonus}" + (f" ({detail})" if count > 1 or bonus else "")


class Dice:
    def __init__(self, options):  # this bot's `options:` from bots.yaml
        self.max_dice = options.pop("max_dice", 10)
        if options or type(self.max_dice) is not int or self.max_dice < 1:
            raise ValueError("dice takes one option, max_dice: a whole number of at least 1")

    async def respond(self, request):
        notation = DICE.fullmatch(request.args.replace(" ", "").lower() or "d6")
        if not notation:
            raise Refusal(f"I roll dice written like 2d6+1. Try: /{request.command} 2d6+1")
        count, sides, bonus = int(notation[1] or 1), int(notation[2]), int(notation[3] or 0)
        if not (1 <= count <= self.max_dice and 1 <= sides <= MAX_SIDES):
            raise Refusal(f"I roll 1 to {self.max_dice} dice of 1 to {MAX_SIDES} sides.")
        yield roll(count, sides, bonus)


@hookimpl
def register_providers(register):
    register("dice", Dice)


async def roll_dice(sides: int = 6, count: int = 1) -> str:
    """Roll `count` dice with `sides` sides each. Returns the total, then each die in brackets."""
    if not (1 <= count <= 10 and 1 <= sides <= MAX_SIDES):
        raise ToolError(f"roll_dice rolls 1 to 10 dice of 1 to {MAX_SIDES} sides")
    return roll(count, sides)


@hookimpl
def register_tools(register):
    register(roll_dice)
