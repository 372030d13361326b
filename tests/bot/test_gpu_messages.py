"""The user's words for an out-of-memory failure, in English and Russian."""
from bot.i18n import make_i18n
from bot.jobs import Job, JobFailed
from bot.messenger import failure_text


def test_out_of_memory_asks_for_a_smaller_picture_in_each_language():
    i18n = make_i18n()
    event = JobFailed(Job(1, 1, "translate", {}, {}), "error", "out_of_memory",
                      "There was not enough memory to work on a 2048x1536 picture; a smaller picture would fit.")
    with i18n.context(), i18n.use_locale("en"):
        assert "smaller one" in failure_text(event)
    with i18n.context(), i18n.use_locale("ru"):
        assert "поменьше" in failure_text(event)
