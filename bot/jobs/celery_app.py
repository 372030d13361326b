"""The Celery application the bot (which only sends tasks) and the worker hosts share.

What Celery carries here is small: one task, `stylebot.run(job_id,
attempt)`, whose message holds two JSON values. The pictures, the job's
options and its events live in Redis keys of their own (bot/jobs/store.py),
because the Redis transport base64-encodes message bodies and a picture has
no business in a broker's queue.

The choices, each against a pitfall of Celery over Redis:
- JSON only, sent and accepted: a pickle from the network is code execution.
- No result backend: results never pile up in Redis; ours go through the
  job store and are deleted once delivered.
- Early acknowledgement, and `worker_disable_prefetch`: a worker takes a
  message only when one of its processes is free, so jobs wait in the queue
  (where the bot counts their positions) rather than behind a busy process.
  A worker that dies mid-job loses its message; the bot notices (the job's
  lease in Redis stops being renewed) and sends the job again, at most once
  (bot/jobs/celery_queue.py). That replaces `acks_late`, under which a job
  longer than the visibility timeout runs twice, redelivery has no cap and
  a lost host's jobs come back only after `unacked_restore_interval`.
- Every broker key under stylebot:q:broker:, so that one Redis ACL pattern
  gives the workers what they need and nothing of the users' dialogs.
- No remote control, events, gossip or mingle: nothing here needs them, and
  each is pub/sub traffic and keys outside that pattern.
"""
from __future__ import annotations

from pathlib import Path

from celery import Celery

from bot.jobs.redis_tls import celery_ssl_options

TASK = "stylebot.run"
QUEUE = "stylebot"
BROKER_PREFIX = "stylebot:q:broker:"
# Redis priorities run 0 (first) to 9; a job sent again after its worker died goes ahead of new ones.
NEW_JOB_PRIORITY = 6
RETRY_PRIORITY = 0
# Seconds a send may wait for Redis: a user's /style must not hang on a Redis that went away.
SEND_TIMEOUT_S = 2.0
WORKER_FLAGS = ("--without-gossip", "--without-mingle", "--without-heartbeat")


def make_app(redis_url: str, ca_file: Path | None = None) -> Celery:
    app = Celery("stylebot", broker=redis_url, set_as_current=False)
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        result_serializer="json",
        event_serializer="json",
        result_backend=None,
        task_ignore_result=True,
        task_store_errors_even_if_ignored=False,
        task_default_queue=QUEUE,
        task_acks_late=False,
        worker_prefetch_multiplier=1,
        worker_disable_prefetch=True,
        worker_enable_remote_control=False,
        worker_send_task_events=False,
        task_send_sent_event=False,
        worker_hijack_root_logger=False,
        worker_redirect_stdouts=False,
        broker_connection_retry_on_startup=True,
        broker_connection_timeout=SEND_TIMEOUT_S,
        broker_transport_options={
            "global_keyprefix": BROKER_PREFIX,
            "priority_steps": list(range(10)),
            "queue_order_strategy": "priority",
            # Nothing is left unacknowledged for long (early acks): an hour is only a bound.
            "visibility_timeout": 3600,
            "socket_timeout": SEND_TIMEOUT_S,
            "socket_connect_timeout": SEND_TIMEOUT_S,
        },
        broker_use_ssl=celery_ssl_options(redis_url, ca_file),
    )
    return app
