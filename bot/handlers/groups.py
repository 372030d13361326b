"""What the bot leaves alone: service messages, other bots, and group messages not meant for it.

Included first (after the error router), so nothing else answers these; the
rules are in bot/chat/groups.py.
"""
from aiogram import Router
from aiogram.types import Message

from bot.chat.groups import FROM_A_BOT, IN_GROUP, IS_SERVICE, MeantForMe

router = Router(name="groups")


@router.message(IS_SERVICE)
@router.message(FROM_A_BOT)
@router.message(IN_GROUP, ~MeantForMe())
async def not_for_me(message: Message) -> None:
    """Taken, and left unanswered."""
