"""Putting the bot together and running it: long polling, or a webhook when WEBHOOK_URL is set.

Startup carries on the jobs an earlier run left going (JOB_BACKEND=celery)
and starts the job workers; shutdown (SIGTERM or SIGINT) stops taking
updates, tells the users whose jobs are dropped (the local backend's; a
Celery queue's jobs go on), stops the workers, and the process is gone
within 10 seconds.
"""
from __future__ import annotations

import asyncio
import logging
import secrets
import signal
from dataclasses import replace

from aiogram import Bot, Dispatcher
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import TelegramAPIError
from aiogram.types import BotCommand
from aiogram.utils.i18n import I18n
from aiogram.utils.i18n import gettext as _
from aiogram.webhook.aiohttp_server import SimpleRequestHandler, setup_application
from aiohttp import web

from bot.chat.albums import AlbumParts
from bot.chat.i18n import LANGUAGES, UserLocaleMiddleware, make_i18n
from bot.chat.messenger import JobMessenger
from bot.chat.ordering import OneUpdateAtATime
from bot.chat.pictures import LOCAL_DOWNLOAD_LIMIT_BYTES, PictureStore
from bot.chat.retry import QuietCallbackAnswers, RetryRequests
from bot.chat.stale import SkipStaleMessages
from bot.chat.watch import Watchers
from bot.handlers import routers
from bot.handlers import stats as stats_command
from bot.jobs.backend import JobBackend
from bot.jobs.local import LocalJobQueue
from bot.jobs.worker import engine_options
from bot.operator.access import AllowList, HourlyLimit
from bot.operator.health import Heartbeat
from bot.operator.ledger import JobLedger
from bot.operator.stats import Stats
from bot.operator.storage import build_storage
from bot.presets import Presets, load_paintings
from bot.settings import Settings

log = logging.getLogger(__name__)

QUEUE_STOP_TIMEOUT_S = 4.0


def build_bot(settings: Settings) -> Bot:
    session = AiohttpSession(api=TelegramAPIServer.from_base(settings.telegram_api_url,
                                                             is_local=settings.telegram_api_local))
    session.middleware(RetryRequests())
    session.middleware(QuietCallbackAnswers())
    return Bot(token=settings.bot_token, session=session)


def build_dispatcher(settings: Settings, bot: Bot, i18n: I18n) -> Dispatcher:
    storage, redis_link = build_storage(settings.redis_url, settings.redis_ca_file)
    dp = Dispatcher(storage=storage)
    pictures = PictureStore(max_side_hint=max(settings.max_side, settings.gpu_max_side),
                            download_limit=LOCAL_DOWNLOAD_LIMIT_BYTES if settings.telegram_api_local else None)
    presets = Presets(load_paintings(settings.presets_dir))
    messenger = JobMessenger(bot, i18n, storage, pictures, can_preview=bool(presets.paintings))
    messenger.queue = build_backend(settings, messenger.on_event)

    # The operator's side: counters for /stats, the hourly limit, and (with Redis) the job ledger.
    stats = Stats(redis_link)
    limit = HourlyLimit(settings, on_refusal=lambda op: stats.count(op, "refused"))
    ledger = JobLedger(redis_link, bot, i18n) if redis_link is not None else None
    messenger.watch = Watchers(*(w for w in (ledger, stats, limit) if w is not None))
    heartbeat = Heartbeat(settings.heartbeat_file, workers=messenger.queue.worker_pids,
                          needs_workers=bool(settings.job_workers))

    dp.update.outer_middleware(AllowList(settings, i18n, on_refusal=stats.stranger_refused))
    dp.update.outer_middleware(OneUpdateAtATime())
    UserLocaleMiddleware(i18n).setup(dp)
    dp.message.outer_middleware(SkipStaleMessages())
    dp.message.outer_middleware(AlbumParts())
    dp.include_routers(stats_command.router, *routers())
    dp.workflow_data.update(settings=settings, messenger=messenger, pictures=pictures,
                            presets=presets, stats=stats, redis_link=redis_link)

    @dp.startup()
    async def on_startup(bot: Bot) -> None:
        heartbeat.start()
        if redis_link is not None:
            log.info("dialogs and languages are kept in Redis")
        await stats.start()
        # Jobs an earlier run left going (JOB_BACKEND=celery) are carried on before new events come in.
        survivors = await messenger.queue.recover()
        if ledger is not None:
            await ledger.start(survivors, adopt=messenger.adopt)
        else:
            for job in survivors:
                messenger.adopt(job, {})
        await messenger.queue.start()
        # Beat again now that the job workers run: the first beat, written before them, named none.
        heartbeat.beat()
        await publish_commands(bot, i18n)
        if settings.use_webhook:
            await bot.set_webhook(settings.webhook_url, secret_token=settings.webhook_secret,
                                  allowed_updates=dp.resolve_used_update_types())
        else:
            # A webhook left from an earlier deployment would make getUpdates fail.
            await bot.delete_webhook()
        log.info("stylebot is up: %s", "webhook " + settings.webhook_path if settings.use_webhook else "polling")

    @dp.shutdown()
    async def on_shutdown() -> None:
        dropped = await messenger.queue.stop(timeout=QUEUE_STOP_TIMEOUT_S)
        await messenger.tell_about_shutdown(dropped)
        if ledger is not None:
            await ledger.stop()
        await stats.stop()
        if redis_link is not None:
            await redis_link.close()
        heartbeat.stop()
        pictures.close()
        log.info("stylebot stopped; %d unfinished job(s) dropped", len(dropped))

    return dp


def build_backend(settings: Settings, on_event) -> JobBackend:
    """JOB_BACKEND: worker processes of the bot's own, or a Celery queue in Redis."""
    if settings.job_backend == "celery":
        from bot.jobs.celery_queue import CeleryJobQueue  # celery is imported only by those who use it

        return CeleryJobQueue(settings, on_event=on_event, on_ready=settings.engine_reports.update)
    return LocalJobQueue(engine_options=engine_options(settings, settings.job_workers), workers=settings.job_workers,
                         max_queue=settings.max_queue, time_limit_s=settings.job_time_limit_s, on_event=on_event,
                         on_ready=settings.engine_reports.update)


async def publish_commands(bot: Bot, i18n: I18n) -> None:
    """The command menu in the Telegram app, in each language we speak."""
    for locale in LANGUAGES:
        with i18n.context(), i18n.use_locale(locale):
            commands = [
                BotCommand(command="style", description=_("Paint a photo in a picture's style")),
                BotCommand(command="presets", description=_("Paint like a famous painting")),
                BotCommand(command="season", description=_("Summer to winter and back")),
                BotCommand(command="upscale", description=_("Make a picture 4× larger")),
                BotCommand(command="cancel", description=_("Stop the current job")),
                BotCommand(command="lang", description=_("Language")),
                BotCommand(command="feedback", description=_("Write to the author")),
                BotCommand(command="reset", description=_("Forget everything about me")),
                BotCommand(command="help", description=_("What I can do")),
            ]
        try:
            await bot.set_my_commands(commands, language_code=None if locale == "en" else locale)
        except TelegramAPIError as e:
            log.warning("could not publish the command menu (%s): %s", locale, e)


async def run(settings: Settings) -> None:
    if settings.use_webhook and settings.webhook_secret is None:
        # Telegram sends the secret back in a header; a fresh one per start is as good as a fixed one.
        settings = replace(settings, webhook_secret=secrets.token_urlsafe(32))
    i18n = make_i18n()
    bot = build_bot(settings)
    dp = build_dispatcher(settings, bot, i18n)
    try:
        if settings.use_webhook:
            await serve_webhook(settings, bot, dp)
        else:
            await dp.start_polling(bot, close_bot_session=False)
    finally:
        await bot.session.close()


async def serve_webhook(settings: Settings, bot: Bot, dp: Dispatcher) -> None:
    app = web.Application()
    # Startup and shutdown hooks first, so ours run before the handler closes the bot's session.
    setup_application(app, dp, bot=bot)
    SimpleRequestHandler(dispatcher=dp, bot=bot, secret_token=settings.webhook_secret).register(
        app, path=settings.webhook_path)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await web.TCPSite(runner, host="0.0.0.0", port=settings.port).start()
        log.info("listening for webhook updates on port %d", settings.port)
        await stop.wait()
        log.info("stop signal received")
    finally:
        await runner.cleanup()

