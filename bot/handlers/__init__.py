"""One router per feature; the order of `routers()` is the order they are asked."""
from aiogram import Router

from bot.handlers import (control, errors, fallback, feedback, groups, language, loose_picture, mix, presets,
                          results, season, start, style, upscale, upscale_album)


def routers() -> list[Router]:
    return [
        errors.router,
        groups.router,           # service messages, other bots, group chatter: no answer
        control.router,          # /cancel and /reset work from any dialog
        start.router,
        language.router,
        feedback.router,
        style.router,
        presets.router,
        season.router,
        upscale.router,
        upscale_album.router,
        results.router,
        mix.router,
        loose_picture.router,
        fallback.router,         # last: whatever nobody else took
    ]
