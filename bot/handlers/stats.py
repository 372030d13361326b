"""/stats: what the bot has done and is doing, for the operator (ADMIN_CHAT_ID) alone.

For anyone else the filter fails and the command goes on to the fallback's
"I don't know that command", as any other unknown command would.
"""
from aiogram import Router
from aiogram.filters import Command
from aiogram.types import Message

from bot.chat.messenger import JobMessenger
from bot.operator.redis_link import RedisLink
from bot.operator.stats import Stats, report
from bot.settings import Settings

router = Router(name="stats")


def from_operator(message: Message, settings: Settings) -> bool:
    # ADMIN_CHAT_ID is the operator's own id, or a group of theirs.
    return settings.is_admin(message.chat.id) or (message.from_user is not None
                                                  and settings.is_admin(message.from_user.id))


@router.message(Command("stats"), from_operator)
async def show_stats(message: Message, settings: Settings, messenger: JobMessenger, stats: Stats,
                     redis_link: RedisLink | None) -> None:
    await message.answer(report(stats, messenger.queue, settings.job_workers, redis_link,
                                worker_hosts=settings.job_backend == "celery"))
