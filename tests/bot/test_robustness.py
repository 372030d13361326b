"""Bad inputs, many users, flood control, dead workers and shutdown: the bot answers and stays up."""
import io
import os
import re
import signal
import struct
import time
import zlib
from pathlib import Path

import pytest
from PIL import Image

from tests.bot.pictures import picture

JOB_S = 180


def png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims width x height pixels: a decompression bomb's calling card."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)   # 1-bit grey
    rows = zlib.compress(b"\x00" * (1 + width // 8) * 64)            # a few rows; the header is what counts
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")


def start_quality_job(fake_tg, user, size=(256, 256)):
    """A /style job in quality mode: slow enough to be caught running."""
    sent = fake_tg.send_text(user, "/style")
    ask = fake_tg.wait_for(chat_id=user.id, text="style picture", after=sent)
    fake_tg.press(user, ask, text="Quality")
    fake_tg.send_photo(user, picture(seed=9))
    return fake_tg.send_photo(user, picture(size))


def worker_pids(bot) -> list[int]:
    """The job workers: children of the bot started by multiprocessing's spawn."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        if parent == bot.proc.pid and b"spawn_main" in cmdline:
            pids.append(int(entry.name))
    return pids


@pytest.mark.parametrize("send, expected", [
    (lambda tg, u: tg.send_sticker(u, b"\x1f\x8b gzip json", is_animated=True), "Animated stickers"),
    (lambda tg, u: tg.send_sticker(u, b"\x1aE\xdf\xa3 webm", is_video=True), "Video stickers"),
    (lambda tg, u: tg.send_document(u, b"%PDF-1.4\n%%EOF\n", "paper.pdf", "application/pdf"), "isn't a picture"),
    (lambda tg, u: tg.send_document(u, picture()[:300] + b"\x00" * 50, "cut.jpg", "image/jpeg"), "damaged"),
    (lambda tg, u: tg.send_document(u, None, "huge.png", "image/png", file_size=25_000_000), "over 20 MB"),
    (lambda tg, u: tg.send_photo(u, picture(), file_size=21_000_000), "over 20 MB"),
    (lambda tg, u: tg.send_document(u, png_claiming(30_000, 30_000), "bomb.png", "image/png"), "unsafe"),
])
def test_bad_input_gets_a_clear_answer_and_the_bot_goes_on(fake_tg, bot, alice, send, expected):
    sent = send(fake_tg, alice)
    fake_tg.wait_for(chat_id=alice.id, text=expected, after=sent, timeout=20)
    sent = fake_tg.send_photo(alice, picture())
    fake_tg.wait_for(chat_id=alice.id, text="What shall I do", after=sent, timeout=20)
    assert bot.proc.poll() is None


def test_static_sticker_and_image_documents_are_pictures(fake_tg, bot, alice):
    webp = io.BytesIO()
    Image.new("RGBA", (128, 128), (200, 30, 30, 255)).save(webp, "WEBP")
    sent = fake_tg.send_sticker(alice, webp.getvalue())
    fake_tg.wait_for(chat_id=alice.id, text="What shall I do", after=sent)
    for fmt, mime in (("PNG", "image/png"), ("WEBP", "image/webp"), ("BMP", "image/bmp"), ("TIFF", "image/tiff")):
        sent = fake_tg.send_document(alice, picture((64, 48), fmt), f"p.{fmt.lower()}", mime)
        fake_tg.wait_for(chat_id=alice.id, text="What shall I do", after=sent)


def test_a_bystander_is_answered_within_a_second_while_jobs_run(fake_tg, bot):
    users = [fake_tg.add_user(first_name=f"U{i}") for i in range(3)]
    for user in users:
        start_quality_job(fake_tg, user)
    fake_tg.wait_for(chat_id=users[0].id, text=re.compile("Painting|Working"), timeout=JOB_S)
    # The second and third wait in line, and are told so.
    fake_tg.wait_for(chat_id=users[2].id, text="In the queue", timeout=30)

    bystander = fake_tg.add_user(first_name="Bob")
    for _ in range(3):
        sent = fake_tg.send_text(bystander, "/help")
        reply = fake_tg.wait_for(chat_id=bystander.id, text="Here is what I can do", after=sent, timeout=5)
        assert reply.time - sent.time < 1.0
        time.sleep(0.5)
    for user in users:
        fake_tg.send_text(user, "/cancel")


def test_a_flood_of_pictures_makes_one_job_and_please_wait(fake_tg, bot, alice):
    sent = fake_tg.send_text(alice, "/upscale")
    fake_tg.wait_for(chat_id=alice.id, text="picture to upscale", after=sent)
    for seed in range(5):
        fake_tg.send_photo(alice, picture((256, 192), seed=seed))
    fake_tg.wait_for(chat_id=alice.id, kind="document", timeout=JOB_S)
    fake_tg.wait_idle(quiet=1.0, timeout=30)
    messages = fake_tg.messages(alice.id)
    assert sum(m.kind == "document" for m in messages) == 1
    waits = [m for m in messages if m.text and "Please wait for it, or send /cancel" in m.text]
    assert len(waits) >= 3


def test_flood_control_and_server_errors_are_waited_out(fake_tg, bot, alice):
    fake_tg.fail("sendPhoto", times=1, status=429, retry_after=2)
    sent = fake_tg.send_text(alice, "/season")
    press = fake_tg.press(alice, fake_tg.wait_for(chat_id=alice.id, text="seasons", after=sent), text="Summer")
    fake_tg.wait_for(chat_id=alice.id, text="photo", after=press)
    sent = fake_tg.send_photo(alice, picture())
    fake_tg.wait_for(chat_id=alice.id, kind="photo", after=sent, timeout=JOB_S)
    first, second = fake_tg.calls("sendPhoto")[:2]
    assert first.status == 429 and second.ok and second.time - first.time >= 1.9

    fake_tg.fail("sendDocument", times=2, status=502)
    sent = fake_tg.send_text(alice, "/upscale")
    fake_tg.wait_for(chat_id=alice.id, text="picture to upscale", after=sent)
    sent = fake_tg.send_photo(alice, picture((40, 30)))
    fake_tg.wait_for(chat_id=alice.id, kind="document", after=sent, timeout=JOB_S)
    assert [c.status for c in fake_tg.calls("sendDocument")][:3] == [502, 502, 200]


def test_big_results_go_as_documents(fake_tg, start_bot, alice):
    start_bot(MAX_SIDE="700")
    sent = fake_tg.send_text(alice, "/season")
    press = fake_tg.press(alice, fake_tg.wait_for(chat_id=alice.id, text="seasons", after=sent), text="Summer")
    fake_tg.wait_for(chat_id=alice.id, text="photo", after=press)
    # 700 x 30 after the cap: ratio over 20, which sendPhoto refuses.
    sent = fake_tg.send_document(alice, picture((1400, 60), "PNG"), "strip.png", "image/png")
    result = fake_tg.wait_for(chat_id=alice.id, kind="document", after=sent, timeout=JOB_S)
    assert "Done" in result.caption
    assert fake_tg.errors() == []


def test_a_killed_worker_gets_an_apology_and_the_next_job_works(fake_tg, bot, alice):
    sent = start_quality_job(fake_tg, alice)
    fake_tg.wait_for(chat_id=alice.id, text=re.compile("Painting|Working"), after=sent, timeout=JOB_S)
    pids = worker_pids(bot)
    assert pids, "the bot runs its networks in worker processes"
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    fake_tg.wait_for(chat_id=alice.id, text="crashed", after=sent, timeout=30)

    sent = fake_tg.send_text(alice, "/upscale")
    fake_tg.wait_for(chat_id=alice.id, text="picture to upscale", after=sent)
    sent = fake_tg.send_photo(alice, picture((40, 30)))
    fake_tg.wait_for(chat_id=alice.id, kind="document", after=sent, timeout=JOB_S)
    assert bot.proc.poll() is None


def test_sigterm_tells_users_with_running_jobs_and_exits_within_10s(fake_tg, bot, alice):
    bob = fake_tg.add_user(first_name="Bob")
    start_quality_job(fake_tg, alice)
    fake_tg.wait_for(chat_id=alice.id, text=re.compile("Painting|Working"), timeout=JOB_S)
    start_quality_job(fake_tg, bob)
    fake_tg.wait_for(chat_id=bob.id, text="In the queue", timeout=30)

    began = time.monotonic()
    bot.send_signal(signal.SIGTERM)
    code = bot.wait(timeout=10)
    assert code == 0 and time.monotonic() - began < 10
    for user in (alice, bob):
        fake_tg.wait_for(chat_id=user.id, text="restarting", timeout=1)
    assert not worker_pids(bot)


def test_a_full_queue_gets_a_polite_busy(fake_tg, start_bot):
    start_bot(MAX_QUEUE="1")
    first, second, third = (fake_tg.add_user(first_name=name) for name in ("A", "B", "C"))
    start_quality_job(fake_tg, first)
    fake_tg.wait_for(chat_id=first.id, text=re.compile("Painting|Working"), timeout=JOB_S)
    start_quality_job(fake_tg, second)
    fake_tg.wait_for(chat_id=second.id, text="In the queue", timeout=30)
    start_quality_job(fake_tg, third)
    fake_tg.wait_for(chat_id=third.id, text="very busy", timeout=30)
    for user in (first, second):
        fake_tg.send_text(user, "/cancel")


def test_a_job_over_the_time_limit_gets_an_apology(fake_tg, start_bot, alice):
    start_bot(JOB_TIME_LIMIT="10")
    sent = start_quality_job(fake_tg, alice, size=(256, 256))
    fake_tg.wait_for(chat_id=alice.id, text="took too long", after=sent, timeout=JOB_S)
    sent = fake_tg.send_text(alice, "/help")
    fake_tg.wait_for(chat_id=alice.id, text="Here is what I can do", after=sent)
