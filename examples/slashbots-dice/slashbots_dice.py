"""slashbots-dice: a /roll bot for slashbots. ``/roll 2d6+1`` rolls two six-sided dice and adds one."""

import random
import re

from slashbots import Refusal, hookimpl

DICE = re.compile(r"(\d{0,9})d(\d{1,9})([+-]\d{1,9})?")  # [count]d<sides>[+-bonus], digits capped
MAX_SIDES = 1000


class Dice:
    def __init__(self, options):  # this bot's `options:` from bots.yaml
        self.max_dice = options.pop("max_dice", 10)
        if options or type(self.max_dice) is not int or self.max_dice < 1:
            raise ValueError("dice takes one option, max_dice: a whole number of at least 1")

    async def respond(self, request):
        roll = DICE.fullmatch(request.args.replace(" ", "").lower() or "d6")
        if not roll:
            raise Refusal(f"I roll dice written like 2d6+1. Try: /{request.command} 2d6+1")
        count, sides, bonus = int(roll[1] or 1), int(roll[2]), int(roll[3] or 0)
        if not (1 <= count <= self.max_dice and 1 <= sides <= MAX_SIDES):
            raise Refusal(f"I roll 1 to {self.max_dice} dice of 1 to {MAX_SIDES} sides.")
        rolls = [random.randint(1, sides) for _ in range(count)]
        detail = " + ".join(map(str, rolls)) + (f" {bonus:+d}" if bonus else "")
        yield f"🎲 {sum(rolls) + bonus}" + (f" ({detail})" if count > 1 or bonus else "")


@hookimpl
def register_providers(register):
    register("dice", Dice)
