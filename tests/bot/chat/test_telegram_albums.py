"""Albums: one menu per album, acting on its first picture; inside /style an album of two is style then photo."""

from tests.bot.pictures import picture

JOB_S = 180


def test_an_album_gets_one_menu_that_acts_on_its_first_picture(fake_tg, bot, alice):
    album = fake_tg.send_album(alice, [picture((160, 120), seed=1), picture((90, 120), seed=2),
                                       picture((120, 120), seed=3)])
    menu = fake_tg.wait_for(chat_id=alice.id, text="Nice picture", after=album[0])
    assert "first picture" in menu.text
    fake_tg.wait_idle(quiet=1.0)
    assert sum("Nice picture" in (m.text or "") for m in fake_tg.messages(alice.id)) == 1
    assert not any("still working" in (m.text or "") for m in fake_tg.messages(alice.id))

    press = fake_tg.press(alice, menu, text="Summer")
    pick = fake_tg.wait_for(chat_id=alice.id, text="seasons", after=press)
    press = fake_tg.press(alice, pick, text="Summer → winter")
    result = fake_tg.wait_for(chat_id=alice.id, kind="photo", after=press, timeout=JOB_S)
    assert result.image().size == (160, 120), "the first picture's, not the last one's"


def test_an_album_of_two_sent_to_style_is_the_style_then_the_photo(fake_tg, bot, alice):
    sent = fake_tg.send_text(alice, "/style")
    fake_tg.wait_for(chat_id=alice.id, text="style picture", after=sent)
    album = fake_tg.send_album(alice, [picture((100, 100), seed=4), picture((200, 120), seed=5)])
    result = fake_tg.wait_for(chat_id=alice.id, kind="photo", after=album[0], timeout=JOB_S)
    assert result.image().size[0] > result.image().size[1], "painted the album's second picture"
    assert fake_tg.errors() == []
