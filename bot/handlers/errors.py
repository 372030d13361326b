"""The error router: a handler that failed still gets the user an answer."""
import logging

from aiogram import Router
from aiogram.exceptions import TelegramAPIError
from aiogram.types import ErrorEvent
from aiogram.utils.i18n import gettext as _

log = logging.getLogger(__name__)

router = Router(name="errors")


@router.error()
async def apologise(event: ErrorEvent) -> bool:
    log.error("update %s failed", event.update.update_id, exc_info=event.exception)
    text = _("😔 Sorry, something went wrong on my side. Please try again.")
    try:
        if event.update.callback_query is not None:
            await event.update.callback_query.answer(text, show_alert=True)
        elif event.update.message is not None:
            await event.update.message.answer(text)
    except TelegramAPIError:
        pass   # e.g. the query is already answered, or the user blocked the bot
    return True
