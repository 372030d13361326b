"""The stricter fake: network faults, flood control, expiring presses, groups, webhook rules.

Driven by aiogram's own client, like tests/bot/test_fake_telegram.py: aiogram
must see these faults as it sees them from Telegram.
"""
import asyncio
import time

import pytest
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import ClientDecodeError, TelegramBadRequest, TelegramNetworkError, TelegramRetryAfter

from tests.bot.pictures import picture
from tests.fake_telegram import TOKEN, FakeTelegram


def with_bot(fake, scenario, *, local=False):
    async def main():
        session = AiohttpSession(api=TelegramAPIServer.from_base(fake.base_url, is_local=local))
        async with Bot(TOKEN, session=session) as bot:
            return await scenario(bot)
    return asyncio.run(main())


def test_html_error_pages_and_dropped_connections(fake_tg):
    alice = fake_tg.add_user()
    fake_tg.fault("sendMessage", "html_502")
    fake_tg.fault("sendMessage", "drop")
    fake_tg.fault("sendMessage", "drop_after")

    async def scenario(bot):
        seen = []
        for _ in range(3):
            try:
                await bot.send_message(alice.id, "hello")
            except ClientDecodeError:
                seen.append("decode")
            except TelegramNetworkError:
                seen.append("network")
        await bot.send_message(alice.id, "fine now")
        return seen

    assert with_bot(fake_tg, scenario) == ["decode", "network", "network"]
    # The dropped-after one went out although the bot never heard so; the dropped-before one did not.
    assert [m.text for m in fake_tg.messages(alice.id)] == ["hello", "fine now"]
    assert fake_tg.errors() == []


def test_flood_control_per_chat_grows_while_pushed(fake_tg):
    alice = fake_tg.add_user()
    fake_tg.set_flood_control()

    async def scenario(bot):
        waits = []
        for n in range(6):
            try:
                await bot.send_message(alice.id, f"m{n}")
            except TelegramRetryAfter as e:
                waits.append(e.retry_after)
        return waits

    waits = with_bot(fake_tg, scenario)
    assert len(waits) == 3 and waits == sorted(waits) and waits[-1] > waits[0]
    assert len(fake_tg.messages(alice.id)) == 3


def test_flood_control_per_group_is_a_minutes_budget(fake_tg):
    group = fake_tg.add_group()
    fake_tg.set_flood_control(group_per_minute=5)

    async def scenario(bot):
        ok = 0
        for n in range(7):
            try:
                await bot.send_message(group.id, f"m{n}")
                ok += 1
            except TelegramRetryAfter as e:
                assert e.retry_after > 50
        return ok

    assert with_bot(fake_tg, scenario) == 5


def test_presses_expire_and_can_carry_an_inaccessible_message(fake_tg):
    alice = fake_tg.add_user()

    async def send_menu(bot):
        from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup
        await bot.send_message(alice.id, "menu", reply_markup=InlineKeyboardMarkup(inline_keyboard=[[
            InlineKeyboardButton(text="Go", callback_data="go")]]))
    with_bot(fake_tg, send_menu)
    menu = fake_tg.messages(alice.id)[0]
    fake_tg.callback_ttl_s = 0.2
    press = fake_tg.press(alice, menu, "go", inaccessible=True)
    time.sleep(0.3)

    async def scenario(bot):
        updates = await bot.get_updates()
        query = updates[-1].callback_query
        assert type(query.message).__name__ == "InaccessibleMessage"
        with pytest.raises(TelegramBadRequest, match="query is too old"):
            await query.answer("late")
    with_bot(fake_tg, scenario)
    assert press.id not in fake_tg._answers


def test_groups_privacy_topics_albums_and_service_messages(fake_tg):
    alice = fake_tg.add_user()
    other_bot = fake_tg.add_user(first_name="Other", username="other_bot", is_bot=True)
    group = fake_tg.add_group(forum=True, topics=(7,))
    fake_tg.send_text(alice, "hello all", chat=group)                        # not for the bot
    fake_tg.send_text(alice, "/style@other_bot", chat=group)                  # another bot's
    fake_tg.send_text(alice, "/style@stylebot_test_bot", chat=group, thread=7)
    fake_tg.send_photo(alice, picture(), chat=group)                          # bare photo: unseen
    fake_tg.send_service(alice, group, new_chat_members=[other_bot])
    open_group = fake_tg.add_group(privacy=False)
    fake_tg.send_album(alice, [picture(seed=1), picture(seed=2)], chat=open_group)

    async def scenario(bot):
        updates = await bot.get_updates()
        messages = [u.message for u in updates]
        assert [m.text for m in messages[:1]] == ["/style@stylebot_test_bot"]
        assert messages[0].message_thread_id == 7 and messages[0].is_topic_message
        assert messages[1].new_chat_members[0].is_bot
        album = messages[2:]
        assert len(album) == 2 and album[0].media_group_id == album[1].media_group_id is not None
        sent = await bot.send_message(group.id, "in the topic", message_thread_id=7)
        with pytest.raises(TelegramBadRequest, match="thread not found"):
            await bot.send_message(group.id, "nowhere", message_thread_id=99)
        return sent
    sent = with_bot(fake_tg, scenario)
    assert sent.message_thread_id == 7
    assert fake_tg.messages(group.id)[0].thread_id == 7


@pytest.mark.parametrize("url, error", [
    ("http://bot.example.org/hook", "HTTPS url must be provided"),
    ("https://bot.example.org:8080/hook", "ports 80, 88, 443 or 8443"),
    ("https://bot.example.org:8443/hook", None),
    ("https://bot.example.org/hook", None),
])
def test_webhook_urls_and_ports_as_telegram_takes_them(fake_tg, url, error):
    async def scenario(bot):
        return await bot.set_webhook(url)
    if error is None:
        assert with_bot(fake_tg, scenario) is True and fake_tg.webhook_url == url
    else:
        with pytest.raises(TelegramBadRequest, match=error):
            with_bot(fake_tg, scenario)


def test_a_local_server_takes_any_webhook_and_serves_big_files_from_disk():
    with FakeTelegram(local=True) as fake:
        alice = fake.add_user()
        big = picture() + b"\0" * (21 * 1024 * 1024)
        sent = fake.send_document(alice, big, "big.jpg", "image/jpeg")

        async def scenario(bot):
            assert await bot.set_webhook("http://10.0.0.5:8080/hook")
            file = await bot.get_file(sent.document["file_id"])
            assert file.file_path.startswith("/")
            return (await bot.download_file(file.file_path)).getvalue()
        assert with_bot(fake, scenario, local=True) == big
