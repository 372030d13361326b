"""The fake Telegram server, driven by aiogram's own client: if aiogram accepts its answers, so will the bot."""
import asyncio
import io
import json
import sys
import textwrap
import threading
import time
import urllib.error
import urllib.request

import pytest
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import (TelegramBadRequest, TelegramConflictError, TelegramForbiddenError,
                                TelegramNotFound, TelegramRetryAfter, TelegramServerError,
                                TelegramUnauthorizedError)
from aiogram.types import (BotCommand, BufferedInputFile, InlineKeyboardButton, InlineKeyboardMarkup,
                           InputMediaDocument, InputMediaPhoto)
from PIL import Image

from tests.bot_harness import BotProcess
from tests.fake_telegram import TOKEN


def jpeg(width: int, height: int, color=(200, 40, 40)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buffer, "JPEG")
    return buffer.getvalue()


def with_bot(fake, scenario, token: str = TOKEN):
    """Run `scenario(bot)` with an aiogram Bot pointed at the fake server."""
    async def main():
        session = AiohttpSession(api=TelegramAPIServer.from_base(fake.base_url))
        async with Bot(token, session=session) as bot:
            return await scenario(bot)
    return asyncio.run(main())


KEYBOARD = InlineKeyboardMarkup(inline_keyboard=[[
    InlineKeyboardButton(text="Van Gogh", callback_data="style:vangogh"),
    InlineKeyboardButton(text="Monet", callback_data="style:monet"),
]])


def test_get_me_and_setup_calls(fake_tg):
    async def scenario(bot):
        me = await bot.get_me()
        assert await bot.delete_webhook(drop_pending_updates=True) is True
        assert await bot.set_my_commands([BotCommand(command="start", description="Start")]) is True
        assert await bot.set_my_description("Turns photos into art") is True
        return me

    me = with_bot(fake_tg, scenario)
    assert me.id == 123456 and me.is_bot and me.username == "stylebot_test_bot"
    assert list(fake_tg.commands.values()) == [[{"command": "start", "description": "Start"}]]
    assert fake_tg.errors() == []


def test_send_message_with_keyboard_records_it(fake_tg):
    alice = fake_tg.add_user(first_name="Alice")

    async def scenario(bot):
        first = await bot.send_message(alice.id, "<b>Pick</b> a style &amp; go", parse_mode="HTML",
                                       reply_markup=KEYBOARD)
        fake_tg.send_text(alice, "hello")           # the user's message takes id 2
        second = await bot.send_message(alice.id, "plain", reply_to_message_id=2)
        return first, second

    first, second = with_bot(fake_tg, scenario)
    assert (first.message_id, second.message_id) == (1, 3)
    assert first.text == "Pick a style & go"
    assert first.reply_markup.inline_keyboard[0][1].callback_data == "style:monet"
    assert second.reply_to_message.text == "hello"

    sent = fake_tg.messages(alice.id)
    assert [m.message_id for m in sent] == [1, 3]
    assert sent[0].raw_text == "<b>Pick</b> a style &amp; go" and sent[0].parse_mode == "HTML"
    assert [b["text"] for b in sent[0].buttons] == ["Van Gogh", "Monet"]
    assert sent[0].method == "sendMessage" and sent[1].reply_to == 2


@pytest.mark.parametrize("text, parse_mode, error", [
    ("<b>unclosed", "HTML", "can't find end tag"),
    ("1 < 2", "HTML", "unsupported start tag"),
    ("<br>", "HTML", 'unsupported start tag "br"'),
    ("Done.", "MarkdownV2", "character '.' is reserved"),
    ("", None, "message text is empty"),
    ("x" * 4097, None, "message is too long"),
])
def test_bad_text_is_refused_like_telegram(fake_tg, text, parse_mode, error):
    alice = fake_tg.add_user()

    async def scenario(bot):
        with pytest.raises(TelegramBadRequest) as refused:
            await bot.send_message(alice.id, text, parse_mode=parse_mode)
        return refused.value.message

    assert error in with_bot(fake_tg, scenario).lower()
    assert [c.method for c in fake_tg.errors()] == ["sendMessage"]


def test_markdown_v2_escapes_are_accepted(fake_tg):
    alice = fake_tg.add_user()
    sent = with_bot(fake_tg, lambda bot: bot.send_message(alice.id, r"*Done* in 1\.5 s \(fast\)",
                                                          parse_mode="MarkdownV2"))
    assert sent.text == "Done in 1.5 s (fast)"


def test_photo_and_document_uploads(fake_tg):
    alice = fake_tg.add_user()
    picture = jpeg(1000, 600)

    async def scenario(bot):
        photo = await bot.send_photo(alice.id, BufferedInputFile(picture, "result.jpg"), caption="<i>Done</i>",
                                     parse_mode="HTML", reply_markup=KEYBOARD)
        document = await bot.send_document(alice.id, BufferedInputFile(b"PNGDATA", "result.png"))
        again = await bot.send_photo(alice.id, photo.photo[-1].file_id)     # resend by file_id
        file = await bot.get_file(document.document.file_id)
        downloaded = await bot.download_file(file.file_path)
        return photo, document, again, downloaded.read()

    photo, document, again, downloaded = with_bot(fake_tg, scenario)
    assert [(p.width, p.height) for p in photo.photo] == [(90, 54), (320, 192), (800, 480), (1000, 600)]
    assert photo.caption == "Done" and photo.reply_markup is not None
    assert document.document.file_name == "result.png" and document.document.mime_type == "image/png"
    assert document.document.file_size == 7
    assert again.photo == photo.photo
    assert downloaded == b"PNGDATA"

    sent = fake_tg.messages(alice.id)
    assert [m.kind for m in sent] == ["photo", "document", "photo"]
    assert sent[0].file_bytes == picture and sent[0].file_name == "result.jpg"
    assert sent[0].image().size == (1000, 600)
    assert sent[1].file_bytes == b"PNGDATA"
    assert fake_tg.calls("sendPhoto")[0].files  # it came as a multipart upload


def test_media_group_of_documents_is_one_album_with_a_caption_each(fake_tg):
    alice = fake_tg.add_user()

    def documents(count: int) -> list:
        return [InputMediaDocument(media=BufferedInputFile(jpeg(40 + n, 30), f"big-{n}.jpg"), caption=f"{n + 1}. done")
                for n in range(count)]

    async def scenario(bot):
        album = await bot.send_media_group(alice.id, documents(3))
        with pytest.raises(TelegramBadRequest, match="Too few media"):
            await bot.send_media_group(alice.id, documents(1))
        with pytest.raises(TelegramBadRequest, match="Too much media"):
            await bot.send_media_group(alice.id, documents(11))
        with pytest.raises(TelegramBadRequest, match="can't be mixed"):
            await bot.send_media_group(alice.id, [*documents(1), InputMediaPhoto(
                media=BufferedInputFile(jpeg(50, 50), "p.jpg"))])
        return album

    album = with_bot(fake_tg, scenario)
    assert [m.document.file_name for m in album] == ["big-0.jpg", "big-1.jpg", "big-2.jpg"]
    assert len({m.media_group_id for m in album}) == 1 and album[0].media_group_id
    sent = fake_tg.messages(alice.id)
    assert [(m.kind, m.caption) for m in sent] == [("document", "1. done"), ("document", "2. done"),
                                                   ("document", "3. done")], "refused albums leave nothing"
    assert sent[2].image().size == (42, 30)


def test_photo_upload_limits(fake_tg):
    alice = fake_tg.add_user()

    async def scenario(bot):
        with pytest.raises(TelegramBadRequest, match="PHOTO_INVALID_DIMENSIONS"):
            await bot.send_photo(alice.id, BufferedInputFile(jpeg(2100, 100), "strip.jpg"))
        with pytest.raises(TelegramBadRequest, match="IMAGE_PROCESS_FAILED"):
            await bot.send_photo(alice.id, BufferedInputFile(b"not a picture", "x.jpg"))

    with_bot(fake_tg, scenario)
    assert fake_tg.messages(alice.id) == []


def test_edit_delete_and_history(fake_tg):
    alice = fake_tg.add_user()

    async def scenario(bot):
        progress = await bot.send_message(alice.id, "Working: 0%", reply_markup=KEYBOARD)
        edited = await bot.edit_message_text("Working: 50%", chat_id=alice.id, message_id=progress.message_id,
                                             reply_markup=KEYBOARD)
        with pytest.raises(TelegramBadRequest, match="message is not modified"):
            await bot.edit_message_text("Working: 50%", chat_id=alice.id, message_id=progress.message_id,
                                        reply_markup=KEYBOARD)
        await bot.edit_message_reply_markup(chat_id=alice.id, message_id=progress.message_id)
        photo = await bot.send_photo(alice.id, BufferedInputFile(jpeg(64, 64), "a.jpg"), caption="old")
        await bot.edit_message_caption(chat_id=alice.id, message_id=photo.message_id, caption="new")
        with pytest.raises(TelegramBadRequest, match="no text in the message"):
            await bot.edit_message_text("x", chat_id=alice.id, message_id=photo.message_id)
        assert await bot.delete_message(alice.id, photo.message_id) is True
        with pytest.raises(TelegramBadRequest, match="message to delete not found"):
            await bot.delete_message(alice.id, 99)
        return edited

    edited = with_bot(fake_tg, scenario)
    assert edited.text == "Working: 50%" and edited.edit_date is not None

    progress, photo = fake_tg.messages(alice.id, include_deleted=True)
    assert [h["text"] for h in progress.history] == ["Working: 0%", "Working: 50%", "Working: 50%"]
    assert [h["method"] for h in progress.edits] == ["editMessageText", "editMessageReplyMarkup"]
    assert progress.reply_markup is None
    assert photo.caption == "new" and photo.deleted
    assert fake_tg.messages(alice.id) == [progress]


def test_long_polling_delivers_user_updates_with_offsets(fake_tg):
    alice = fake_tg.add_user(first_name="Alice", username="alice", language_code="de")

    async def scenario(bot):
        started = time.monotonic()
        assert await bot.get_updates(timeout=1) == []
        waited = time.monotonic() - started

        poll = asyncio.create_task(bot.get_updates(timeout=10))
        await asyncio.sleep(0.2)
        sent_at = time.monotonic()
        fake_tg.send_text(alice, "/start promo")
        first = await poll
        latency = time.monotonic() - sent_at

        again = await bot.get_updates(timeout=0)               # not confirmed yet: delivered again
        fake_tg.send_text(alice, "second")
        later = await bot.get_updates(offset=first[0].update_id + 1, timeout=0)
        confirmed = await bot.get_updates(offset=later[-1].update_id + 1, timeout=0)
        return waited, latency, first, again, later, confirmed

    waited, latency, first, again, later, confirmed = with_bot(fake_tg, scenario)
    assert 0.9 <= waited < 3
    assert latency < 1.0
    message = first[0].message
    assert message.text == "/start promo" and message.from_user.language_code == "de"
    assert message.entities[0].type == "bot_command" and message.entities[0].length == 6
    assert message.chat.type == "private" and message.chat.id == alice.id
    assert [u.update_id for u in again] == [first[0].update_id]
    assert [u.message.text for u in later] == ["second"]
    assert later[0].update_id == first[0].update_id + 1
    assert confirmed == []


def test_allowed_updates_filters_later_updates(fake_tg):
    alice = fake_tg.add_user()

    async def scenario(bot):
        await bot.get_updates(timeout=0, allowed_updates=["callback_query"])
        fake_tg.send_text(alice, "ignored")
        return await bot.get_updates(timeout=0)

    assert with_bot(fake_tg, scenario) == []


def test_user_photo_document_and_sticker_arrive_as_telegram_objects(fake_tg):
    alice = fake_tg.add_user()
    big = jpeg(3000, 2000)
    sticker = io.BytesIO()
    Image.new("RGBA", (512, 384)).save(sticker, "WEBP")

    fake_tg.send_photo(alice, big, caption="make it art")
    fake_tg.send_document(alice, b"%PDF-1.4", "scan.pdf", "application/pdf")
    fake_tg.send_document(alice, None, "huge.png", "image/png", file_size=25_000_000)
    fake_tg.send_sticker(alice, sticker.getvalue())

    async def scenario(bot):
        updates = await bot.get_updates(timeout=0)
        photo, pdf, huge, stick = (u.message for u in updates)
        largest = await bot.get_file(photo.photo[-1].file_id)
        smallest = await bot.get_file(photo.photo[0].file_id)
        with pytest.raises(TelegramBadRequest, match="file is too big"):
            await bot.get_file(huge.document.file_id)
        pictures = [Image.open(await bot.download_file(f.file_path)).size for f in (largest, smallest)]
        return photo, pdf, huge, stick, pictures

    photo, pdf, huge, stick, pictures = with_bot(fake_tg, scenario)
    assert [(p.width, p.height) for p in photo.photo] == [(90, 60), (320, 213), (800, 533), (1280, 853),
                                                          (2560, 1707)]
    assert all(p.file_size > 0 and p.file_unique_id for p in photo.photo)
    assert photo.caption == "make it art"
    assert pictures == [(2560, 1707), (90, 60)]
    assert pdf.document.mime_type == "application/pdf" and pdf.document.file_name == "scan.pdf"
    assert huge.document.file_size == 25_000_000
    assert (stick.sticker.width, stick.sticker.height, stick.sticker.is_animated) == (512, 384, False)
    assert [m.message_id for m in fake_tg.chat_log(alice.id)] == [1, 2, 3, 4]


def test_press_and_answer_callback_query(fake_tg):
    alice = fake_tg.add_user()

    async def scenario(bot):
        await bot.send_message(alice.id, "Pick a style", reply_markup=KEYBOARD)
        menu = fake_tg.wait_for(chat_id=alice.id, text="Pick a style")
        press = fake_tg.press(alice, menu, text="Monet")
        with pytest.raises(AssertionError, match="no button"):
            fake_tg.press(alice, menu, "style:unknown")
        (update,) = await bot.get_updates(timeout=0)
        query = update.callback_query
        await bot.answer_callback_query(query.id, text="Monet it is")
        with pytest.raises(TelegramBadRequest, match="query is too old"):
            await bot.answer_callback_query(query.id)
        return press, query

    press, query = with_bot(fake_tg, scenario)
    assert query.data == "style:monet" and query.from_user.id == alice.id
    assert query.message.message_id == 1 and query.message.text == "Pick a style"
    assert press.answer(timeout=1) == {"text": "Monet it is"}


def test_copy_message_to_another_chat(fake_tg):
    alice = fake_tg.add_user()
    fake_tg.add_chat(-100123, title="Moderation")
    original = fake_tg.send_photo(alice, jpeg(64, 48), caption="look")

    async def scenario(bot):
        copied = await bot.copy_message(-100123, from_chat_id=alice.id, message_id=original.message_id)
        with pytest.raises(TelegramBadRequest, match="message to copy not found"):
            await bot.copy_message(-100123, from_chat_id=alice.id, message_id=42)
        with pytest.raises(TelegramBadRequest, match="chat not found"):
            await bot.copy_message(777, from_chat_id=alice.id, message_id=original.message_id)
        return copied

    copied = with_bot(fake_tg, scenario)
    (copy,) = fake_tg.messages(-100123)
    assert copied.message_id == copy.message_id == 1
    assert copy.method == "copyMessage" and copy.kind == "photo" and copy.caption == "look"
    assert copy.file_bytes == original.file_bytes


def test_injected_failures_surface_as_aiogram_errors(fake_tg):
    alice = fake_tg.add_user()
    fake_tg.fail("sendMessage", times=1, status=429, retry_after=7)
    fake_tg.fail("sendPhoto", times=1, status=502)

    async def scenario(bot):
        with pytest.raises(TelegramRetryAfter) as limited:
            await bot.send_message(alice.id, "hi")
        await bot.send_message(alice.id, "hi")
        with pytest.raises(TelegramServerError):
            await bot.send_photo(alice.id, BufferedInputFile(jpeg(8, 8), "a.jpg"))
        return limited.value.retry_after

    assert with_bot(fake_tg, scenario) == 7
    calls = fake_tg.calls("sendMessage")
    assert [(c.status, c.injected) for c in calls] == [(429, True), (200, False)]
    assert calls[0].time <= calls[1].time
    assert fake_tg.errors() == []           # injected failures are not the bot's fault
    assert len(fake_tg.messages(alice.id)) == 1


def test_blocked_user_unknown_method_and_wrong_token(fake_tg):
    alice = fake_tg.add_user()
    fake_tg.block(alice)

    async def scenario(bot):
        with pytest.raises(TelegramForbiddenError, match="blocked"):
            await bot.send_chat_action(alice.id, "typing")
        with pytest.raises(TelegramNotFound):
            await bot.send_dice(alice.id)

    with_bot(fake_tg, scenario)
    assert fake_tg.calls("sendDice")[0].status == 404

    async def wrong_token(bot):
        with pytest.raises(TelegramUnauthorizedError):
            await bot.get_me()

    with_bot(fake_tg, wrong_token, token="654321:OTHER-token")

    request = urllib.request.Request(f"{fake_tg.base_url}/bot{TOKEN}/getMe", data=b"")
    with urllib.request.urlopen(request) as response:     # plain HTTP sees plain Bot API JSON
        assert json.load(response)["ok"] is True
    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(f"{fake_tg.base_url}/file/bot{TOKEN}/photos/nothing.jpg")
    missing.value.close()
    assert missing.value.code == 404


def test_second_long_poll_ends_the_first_with_conflict(fake_tg):
    async def scenario(bot):
        first = asyncio.create_task(bot.get_updates(timeout=5))
        await asyncio.sleep(0.2)
        second = asyncio.create_task(bot.get_updates(timeout=0))
        with pytest.raises(TelegramConflictError):
            await first
        return await second

    assert with_bot(fake_tg, scenario) == []


def test_wait_for_sees_edits_and_reports_the_chat_on_timeout(fake_tg):
    alice = fake_tg.add_user()

    async def scenario(bot):
        sent = await bot.send_message(alice.id, "Working…")
        mark = fake_tg.mark()

        def edit_later():
            time.sleep(0.3)
            with_bot(fake_tg, lambda b: b.edit_message_text("Done!", chat_id=alice.id, message_id=sent.message_id))

        thread = threading.Thread(target=edit_later)
        thread.start()
        found = await asyncio.to_thread(fake_tg.wait_for, chat_id=alice.id, text="Done", after=mark, timeout=5)
        thread.join()
        return found

    found = with_bot(fake_tg, scenario)
    assert found.text == "Done!" and len(found.history) == 2
    with pytest.raises(AssertionError, match="Chat so far:\n  <text #1 in .* from bot: 'Done!'>"):
        fake_tg.wait_for(chat_id=alice.id, text="never", timeout=0.2)
    fake_tg.wait_idle(quiet=0.1, timeout=2)


STAND_IN_BOT = textwrap.dedent('''
    # The shape `python -m bot` has: configuration from the environment, aiogram polling.
    import asyncio, logging, os
    from aiogram import Bot, Dispatcher
    from aiogram.client.session.aiohttp import AiohttpSession
    from aiogram.client.telegram import TelegramAPIServer
    from aiogram.types import Message

    dp = Dispatcher()

    @dp.message()
    async def echo(message: Message):
        await message.answer(f"echo: {message.text}")

    async def main():
        session = AiohttpSession(api=TelegramAPIServer.from_base(os.environ["TELEGRAM_API_URL"]))
        bot = Bot(os.environ["BOT_TOKEN"], session=session)
        await dp.start_polling(bot, polling_timeout=5)

    logging.basicConfig(level=logging.INFO)
    asyncio.run(main())
''')


@pytest.mark.slow
def test_harness_runs_a_polling_bot_and_stops_it_with_sigterm(fake_tg, tmp_path):
    script = tmp_path / "stand_in_bot.py"
    script.write_text(STAND_IN_BOT)
    alice = fake_tg.add_user()
    process = BotProcess(fake_tg, log_path=tmp_path / "bot.log", argv=[sys.executable, str(script)])
    with process:
        process.wait_ready(timeout=30)
        sent = fake_tg.send_text(alice, "hi there")
        reply = fake_tg.wait_for(chat_id=alice.id, after=sent, timeout=10)
        assert reply.text == "echo: hi there"
        # aiogram closes its session on SIGTERM without waiting for running handlers,
        # so stop only once the reply's request has been answered.
        fake_tg.wait_idle()
        code, log = process.stop()
    assert code == 0, log
    assert "Start polling" in log and "Traceback" not in log
    process.assert_token_not_logged()
    assert fake_tg.errors() == []
