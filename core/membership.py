"""``slashbots join``: a bot's user made a member of channels, so people can @mention it.

Stream's composer suggests for ``@`` only the channel's members (and watchers), so a bot
with ``mentions: true`` that is not a member can still be mentioned by typing, but is never
offered. Joining is idempotent: a bot already a member stays one, nothing else changes.
"""

from __future__ import annotations

from slashbots.config import Bot
from slashbots.stream import StreamError, StreamGateway


async def join(gateway: StreamGateway, bot: Bot, cids: list[str]) -> dict[str, StreamError | None]:
    """Make ``bot``'s user a member of each channel; per channel, None or why it could not."""
    user = {"id": bot.identity.id, "name": bot.identity.name}
    if bot.identity.image:
        user["image"] = bot.identity.image
    await gateway.upsert_users([user])  # as sync does: the user must exist, with its name, to be suggested
    results: dict[str, StreamError | None] = {}
    for cid in cids:
        try:
            await gateway.add_members(cid, [bot.identity.id])
            results[cid] = None
        except StreamError as exc:
            if not exc.retryable and exc.status not in (400, 403, 404):
                raise
            results[cid] = exc
    return results
