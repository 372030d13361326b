"""A worker on a GPU: memory given back after each job, and the user's words for running out of it."""
from types import SimpleNamespace

import torch

from bot.chat.i18n import make_i18n
from bot.chat.status import failure_text
from bot.jobs import worker
from bot.jobs.job import Job, JobFailed
from nets.errors import OutOfMemory


def test_out_of_memory_asks_for_a_smaller_picture_in_each_language():
    i18n = make_i18n()
    event = JobFailed(Job(1, 1, "translate", {}, {}), "error", "out_of_memory",
                      "There was not enough memory to work on a 2048x1536 picture; a smaller picture would fit.")
    with i18n.context(), i18n.use_locale("en"):
        assert "smaller one" in failure_text(event)
    with i18n.context(), i18n.use_locale("ru"):
        assert "поменьше" in failure_text(event)


def test_the_worker_reports_out_of_memory_with_its_code():
    failed = worker.failure("job1", OutOfMemory("There was not enough memory to work on a 64x48 picture."))
    assert failed[:4] == ("failed", "job1", "error", "out_of_memory")


def test_the_cuda_cache_is_emptied_after_a_job_on_a_gpu_only(monkeypatch):
    emptied = []
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: emptied.append(True))
    worker.release_gpu_memory(SimpleNamespace(device=torch.device("cpu")))
    worker.release_gpu_memory(None)
    assert emptied == []
    worker.release_gpu_memory(SimpleNamespace(device=torch.device("cuda", 1)))
    assert emptied == [True]
