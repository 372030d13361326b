"""The bot in groups: what it answers there, and how it asks for pictures so that they reach it.

With privacy mode on (@BotFather's default) Telegram gives a bot in a group
only commands, replies to its own messages and service messages; with it off,
everything. Either way the bot answers only what is meant for it:

- commands, bare or addressed to it (/style@this_bot), never another bot's
  (/style@other_bot) and never anything a bot sent;
- replies to its own messages (a picture replying to its prompt);
- with privacy mode off, also the next message of a member whose dialog
  with it is waiting in this group (their FSM state is per user in chat).

Service messages (joins, pins, title changes) get no answer anywhere, and
neither do bare photos or chatter in groups. Prompts for a picture in a group
reply to the member's message with ForceReply(selective=True), so that only
their Telegram app opens a reply, and the picture arrives as a reply even with
privacy mode on; after a button press the prompt mentions the member instead.
Answers go to the forum topic the message came from (aiogram's answer() and
reply() keep message_thread_id; results keep it through the messenger).
"""
from __future__ import annotations

from aiogram import Bot, F
from aiogram.enums import ChatType, ContentType
from aiogram.filters import Filter
from aiogram.types import ForceReply, InaccessibleMessage, Message, User
from aiogram.utils.formatting import Text, TextMention
from aiogram.utils.i18n import gettext as _

IN_GROUP = F.chat.type.in_({ChatType.GROUP, ChatType.SUPERGROUP})
# What people send; anything else (new_chat_members, pinned_message, ...) is a service message.
USER_CONTENT = {ContentType.TEXT, ContentType.PHOTO, ContentType.DOCUMENT, ContentType.STICKER, ContentType.ANIMATION,
                ContentType.VIDEO, ContentType.VIDEO_NOTE, ContentType.AUDIO, ContentType.VOICE, ContentType.CONTACT,
                ContentType.LOCATION, ContentType.VENUE, ContentType.POLL, ContentType.DICE, ContentType.STORY}
IS_SERVICE = ~F.content_type.in_(USER_CONTENT)
FROM_A_BOT = F.from_user.is_bot


class MeantForMe(Filter):
    """A group message the bot should act on (see the module's docstring)."""

    async def __call__(self, message: Message, bot: Bot, raw_state: str | None = None) -> bool:
        text = message.text or message.caption or ""
        if text.startswith("/"):
            command = text.split(maxsplit=1)[0]
            if "@" not in command:
                return True
            return command.split("@", 1)[1].lower() == ((await bot.me()).username or "").lower()
        replied = message.reply_to_message
        if replied is not None and replied.from_user is not None and replied.from_user.id == bot.id:
            return True
        return raw_state is not None


def in_group(message: Message | InaccessibleMessage) -> bool:
    return message.chat.type in (ChatType.GROUP, ChatType.SUPERGROUP)


async def ask_for_picture(where: Message | InaccessibleMessage, user: User, text: str, reply_markup=None) -> None:
    """Ask `user` for a picture: as usual in a private chat; in a group so that the picture reaches the bot.

    `where` is the user's message (a command) or the bot's own (after a button press)."""
    if not in_group(where):
        await where.answer(text, reply_markup=reply_markup)
        return
    text += "\n\n" + _("↩️ Reply to this message with the picture.")
    # Only one markup per message: an options keyboard stays, and the member replies by hand.
    markup = reply_markup or ForceReply(selective=True)
    from_user = getattr(where, "from_user", None)
    if from_user is not None and from_user.id == user.id:
        await where.reply(text, reply_markup=markup)   # selective: the replied-to member's app opens the reply
    else:
        # selective: the mentioned member's app opens the reply
        await where.answer(**Text(TextMention(user.first_name, user=user), ", ", text).as_kwargs(),
                           reply_markup=markup)
