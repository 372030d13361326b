"""/upscale as users meet it: the choices, x2 and x3, the compare sheet, before/after, albums as one batch.

The bot runs with synthetic weights and MAX_SIDE=256 (tests/bot_harness.py), so
pictures are noise but sizes, buttons, captions and what reaches the engine are real.
"""
import re

import numpy as np
import pytest
from tests.bot.pictures import picture

JOB_S = 120
STATUS = re.compile("Starting|In the queue|Working|Painting")


@pytest.fixture
def alice(fake_tg):
    return fake_tg.add_user(first_name="Alice", language_code="en")


def ask(fake_tg, user):
    sent = fake_tg.send_text(user, "/upscale")
    return fake_tg.wait_for(chat_id=user.id, text="picture to upscale", after=sent)


def press_and_see(fake_tg, user, message, label):
    """Press a choice (unless it is ticked already); the same message comes back with it ticked."""
    if any(b["text"].startswith("✅") and label in b["text"] for b in message.buttons):
        return message
    press = fake_tg.press(user, message, text=label)
    press.answer()
    return fake_tg.wait_for(lambda m: m is message and any(
        b["text"].startswith("✅") and label in b["text"] for b in m.buttons), chat_id=user.id, after=press)


def engine_log(bot, count: int) -> list[str]:
    """The worker's lines about its last `count` upscale jobs: op, size, model, scale."""
    return re.findall(r"job \w+: (upscale\w* \d+x\d+ \(.*?\))", bot.log)[-count:]


def pixels(message) -> np.ndarray:
    return np.asarray(message.image().convert("RGB"), dtype=float)


def test_each_choice_is_remembered_and_reaches_the_engine(fake_tg, bot, alice):
    menu = ask(fake_tg, alice)
    menu = press_and_see(fake_tg, alice, menu, "Drawing")
    assert not any("medium" in b["text"] for b in menu.buttons), "denoise is the general model's knob only"
    menu = press_and_see(fake_tg, alice, menu, "×2")
    sent = fake_tg.send_photo(alice, picture((60, 40)))
    drawing = fake_tg.wait_for(chat_id=alice.id, kind="document", after=sent, timeout=JOB_S)
    assert drawing.image().size == (120, 80) and "🎌 Drawing / anime · Upscaled ×2" in drawing.caption
    assert engine_log(bot, 1) == ["upscale 120x80 (model=anime scale=2)"]

    # Remembered: the next /upscale shows, and uses, the same choice.
    menu = ask(fake_tg, alice)
    assert {"✅ 🎌 Drawing / anime", "✅ ×2"} <= {b["text"] for b in menu.buttons}
    menu = press_and_see(fake_tg, alice, menu, "Photo, finest")
    menu = press_and_see(fake_tg, alice, menu, "×4")
    sent = fake_tg.send_photo(alice, picture((32, 24)))
    fake_tg.wait_for(chat_id=alice.id, kind="document", after=sent, timeout=JOB_S)
    assert engine_log(bot, 1) == ["upscale 128x96 (model=x4plus scale=4)"]

    # Each denoise level reaches the engine: with synthetic weights each makes another picture,
    # and medium is the blend of the two ends.
    results = {}
    for level in ("off", "strong", "medium"):
        menu = ask(fake_tg, alice)
        menu = press_and_see(fake_tg, alice, menu, "📷 Photo")
        menu = press_and_see(fake_tg, alice, menu, {"off": "Denoise: off"}.get(level, level))
        sent = fake_tg.send_photo(alice, picture((40, 30), seed=5))
        results[level] = pixels(fake_tg.wait_for(chat_id=alice.id, kind="document", after=sent, timeout=JOB_S))
    assert engine_log(bot, 3) == ["upscale 160x120 (model=general scale=4)"] * 3
    assert np.abs(results["off"] - results["strong"]).mean() > 2
    assert np.abs(results["medium"] - results["off"]).mean() > 1 and np.abs(results["medium"] - results["strong"]).mean() > 1
    assert fake_tg.errors() == []


def test_x3_result_has_the_right_size_and_x4plus_says_when_it_is_too_slow_here(fake_tg, start_bot, alice):
    # A 10-minute limit and x4plus on a CPU: a 256 px picture is about 40 s of work by the clock's
    # starting figures, so with JOB_TIME_LIMIT=30 it is not started, and the bot says why.
    start_bot(JOB_TIME_LIMIT="30")
    menu = ask(fake_tg, alice)
    press_and_see(fake_tg, alice, menu, "×3")
    sent = fake_tg.send_photo(alice, picture((50, 30)))
    result = fake_tg.wait_for(chat_id=alice.id, kind="document", after=sent, timeout=JOB_S)
    assert result.image().size == (150, 90) and "Upscaled ×3: 50×30 → 150×90" in result.caption

    menu = ask(fake_tg, alice)
    menu = press_and_see(fake_tg, alice, menu, "Photo, finest")
    sent = fake_tg.send_photo(alice, picture((256, 192)))
    refusal = fake_tg.wait_for(chat_id=alice.id, text="past my limit", after=sent)
    assert "Photo, finest would take about" in refusal.text and "📷 Photo takes about" in refusal.text
    press_and_see(fake_tg, alice, refusal, "📷 Photo")     # the picture is kept: another model is a tap away
    press = fake_tg.press(alice, refusal, text="▶️ Upscale")
    done = fake_tg.wait_for(chat_id=alice.id, kind="document", after=press, timeout=JOB_S)
    assert done.image().size == (768, 576), "×3, as chosen before"
    assert fake_tg.errors() == []


def test_compare_sheet_then_a_model_then_before_and_after(fake_tg, bot, alice):
    sent = fake_tg.send_photo(alice, picture((160, 120)))
    menu = fake_tg.wait_for(chat_id=alice.id, text="What shall I do", after=sent)
    press = fake_tg.press(alice, menu, text="Upscale")
    choices = fake_tg.wait_for(chat_id=alice.id, text="How shall I upscale", after=press)
    press = fake_tg.press(alice, choices, text="Compare the models first")
    sheet = fake_tg.wait_for(chat_id=alice.id, kind="photo", after=press, timeout=JOB_S)
    # 48 px of the picture at x4: four 192 px panels, two by two, labelled above.
    assert sheet.image().size == (2 * 192 + 3 * 8, 2 * (192 + 30) + 3 * 8)
    assert "most detail" in sheet.caption and "1:1" in sheet.caption
    labels = [b["text"] for b in sheet.buttons]
    assert labels[:3] == ["📷 Photo", "🔬 Photo, finest", "🎌 Drawing / anime"] or labels[1].startswith("🔬 Photo, finest (")
    assert engine_log(bot, 1) == ["upscale_compare 408x468 (scale=4)"]

    press = fake_tg.press(alice, sheet, text="Drawing")
    result = fake_tg.wait_for(chat_id=alice.id, kind="document", after=press, timeout=JOB_S)
    assert result.image().size == (640, 480) and engine_log(bot, 1) == ["upscale 640x480 (model=anime scale=4)"]
    assert {"Before and after, 1:1", "Compare the models"} <= {b["text"][2:] for b in result.buttons}

    press = fake_tg.press(alice, result, text="Before and after")
    crop = fake_tg.wait_for(chat_id=alice.id, kind="photo", after=press, timeout=30)
    # 384 px of the result beside the same 96 px of the original, enlarged: 2 x 384 + 3 gaps wide.
    assert crop.image().size == (2 * 384 + 3 * 8, 384 + 30 + 2 * 8)
    assert "1:1" in crop.caption
    left = np.asarray(crop.image().convert("RGB"))[38:38 + 384, 8:8 + 384]
    # The "before" half is the original's pixels, enlarged 4x without smoothing: blocks of 4x4.
    assert (left[::4, ::4] == left[1::4, 1::4]).all()
    assert fake_tg.errors() == []


def test_a_picture_already_larger_than_the_working_size_says_so_and_offers_a_part_at_full_size(fake_tg, bot, alice):
    ask(fake_tg, alice)
    sent = fake_tg.send_photo(alice, picture((600, 450)))    # MAX_SIDE is 256: x4 would give back 1024x768
    large = fake_tg.wait_for(chat_id=alice.id, text="already large", after=sent)
    assert "600×450" in large.text and "1024×768" in large.text and not fake_tg.calls("sendDocument")
    press = fake_tg.press(alice, large, text="at full size")
    sheet = fake_tg.wait_for(chat_id=alice.id, kind="photo", after=press, timeout=JOB_S)
    assert sheet.image().size == (408, 468) and "own size" in sheet.caption
    assert "(scale=4)" in engine_log(bot, 1)[0] and "downsized" not in bot.log
    press = fake_tg.press(alice, large, text="Upscale anyway")
    result = fake_tg.wait_for(chat_id=alice.id, kind="document", after=press, timeout=JOB_S)
    assert result.image().size == (1024, 768) and "rather than ×4" in result.caption
    assert fake_tg.errors() == []


def test_an_album_of_three_with_one_damaged_picture(fake_tg, bot, alice):
    ask(fake_tg, alice)
    damaged = picture((80, 60), seed=2)
    album = fake_tg.send_album(alice, [picture((60, 40), seed=1), damaged[:len(damaged) // 2],
                                       picture((40, 40), seed=3)])
    status = fake_tg.wait_for(chat_id=alice.id, text="of 3", after=album[0], timeout=30)
    summary = fake_tg.wait_for(chat_id=alice.id, text="Your album is upscaled", after=album[-1], timeout=JOB_S)
    assert "2 of 3 pictures" in summary.text and "❌ Picture 2" in summary.text and "damaged" in summary.text
    docs = [m for m in fake_tg.messages(alice.id) if m.kind == "document"]
    assert len(docs) == 2 and docs[0].media_group_id and docs[0].media_group_id == docs[1].media_group_id
    assert [d.image().size for d in docs] == [(240, 160), (160, 160)]
    assert docs[0].caption.startswith("1. 📷 Photo · Upscaled ×4") and docs[1].caption.startswith("3. 📷 Photo")
    shown = [h["text"] for h in status.history]
    # Edits are paced per chat, so a quick picture's count may be skipped; the count only goes forward.
    counts = [int(m.group(1)) for t in shown if (m := re.search(r"picture (\d) of 3", t))]
    assert counts and counts[0] == 1 and counts == sorted(counts), shown
    assert status.deleted, "one status message for the album, gone once the summary is there"
    assert fake_tg.calls("sendMediaGroup") and fake_tg.errors() == []


def test_cancel_in_the_middle_of_an_album_keeps_what_is_done(fake_tg, bot, alice):
    ask(fake_tg, alice)
    # Eight pictures, cancelled once the second shows: a fast CPU still has several left to stop.
    album = fake_tg.send_album(alice, [picture((256, 192), seed=n) for n in range(8)])
    fake_tg.wait_for(chat_id=alice.id, text=re.compile("picture [2-5] of 8"), after=album[0], timeout=JOB_S)
    sent = fake_tg.send_text(alice, "/cancel")
    summary = fake_tg.wait_for(chat_id=alice.id, text="Stopped", after=sent, timeout=30)
    done = int(re.search(r"(\d+) of 8", summary.text).group(1))
    assert 1 <= done < 8
    docs = [m for m in fake_tg.messages(alice.id) if m.kind == "document"]
    assert len(docs) == done and all(d.image().size == (1024, 768) for d in docs)
    assert len({d.media_group_id for d in docs}) == 1
    mark = fake_tg.mark()
    fake_tg.wait_idle(quiet=3.0, timeout=30)
    assert not [m for m in fake_tg.messages(alice.id) if m.seq > mark], "nothing of the album arrives after"
    assert not any("Cancelled. I stopped" in (m.text or "") for m in fake_tg.messages(alice.id))
    # the worker is free: the next picture runs
    ask(fake_tg, alice)
    sent = fake_tg.send_photo(alice, picture((40, 30)))
    fake_tg.wait_for(chat_id=alice.id, kind="document", after=sent, timeout=JOB_S)


@pytest.mark.parametrize("bot_env", [{"JOBS_PER_HOUR": "2"}])
def test_the_hourly_limit_counts_each_picture_of_an_album(fake_tg, bot, alice):
    sent = fake_tg.send_album(alice, [picture((40, 30), seed=n) for n in range(3)])
    menu = fake_tg.wait_for(chat_id=alice.id, text="What shall I do", after=sent[0])
    press = fake_tg.press(alice, menu, text="Upscale the whole album")
    summary = fake_tg.wait_for(chat_id=alice.id, text="Your album is upscaled", after=press, timeout=JOB_S)
    assert "2 of 3 pictures" in summary.text and "1 picture was not started" in summary.text
    fake_tg.wait_for(chat_id=alice.id, text="That's 2 pictures this hour", after=press)
    docs = [m for m in fake_tg.messages(alice.id) if m.kind == "document"]
    assert len(docs) == 2 and docs[0].media_group_id == docs[1].media_group_id
    ask(fake_tg, alice)
    sent = fake_tg.send_photo(alice, picture((40, 30)))
    fake_tg.wait_for(chat_id=alice.id, text="That's 2 pictures this hour", after=sent)
