"""What an upscale of one picture will be: the side the network gets, the time it takes here, the caption.

Shared by single pictures (bot/handlers/upscale.py) and albums (bot/chat/batch.py
through bot/handlers/upscale_album.py). The input is shrunk first where the result
would pass what we can send (a PNG over Telegram's 50 MB document limit) or the
workers' MAX_SIDE; a job the host cannot afford (x4plus on a slow CPU for a large
picture, by bot/chat/upscale_options.py's clock) is not started, and says why.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from aiogram.utils.i18n import gettext as _

from bot.chat.keyboards import upscale_model_label
from bot.chat.messenger import JobMessenger
from bot.chat.pictures import Picture
from bot.chat.upscale_options import UpscaleChoice
from bot.jobs.job import Job, JobDone
from bot.settings import Settings

# 4096 x 4096: a PNG of a photo this size stays well under the 50 MB document limit.
MAX_RESULT_PIXELS = 4096 * 4096
# Past this share of JOB_TIME_LIMIT a job is not started: it would be stopped anyway.
AFFORDABLE_SHARE = 0.8
SAY_HOW_LONG_S = 20   # a job expected to take longer says so in its status message


def input_side(picture: Picture, scale: int, settings: Settings, messenger: JobMessenger) -> tuple[int, str]:
    """The longest side the network gets, and what limits it: "telegram" (the result's size) or "config"."""
    longer, shorter = max(picture.width, picture.height), min(picture.width, picture.height)
    # The longest input side whose result keeps within the pixel budget.
    budget_side = math.floor(math.sqrt(MAX_RESULT_PIXELS / scale**2 * longer / shorter))
    # The workers' side limit follows their device (bot/jobs/device_limits.py); they cap input_side to it too.
    max_side = messenger.queue.limit("max_side", settings.max_side)
    return min(max_side, budget_side), "telegram" if budget_side < max_side else "config"


def worked_pixels(picture: Picture, side: int) -> int:
    shrink = min(1.0, side / max(picture.width, picture.height))
    return round(picture.width * shrink) * round(picture.height * shrink)


@dataclass
class Plan:
    """What an upscale of one picture will be: the job (None: not affordable here, `note` says why),
    a note for its status message, and what limits its size (for the caption)."""
    job: Job | None
    note: str
    limited_by: str
    model: str

    def describe(self, picture: Picture, done: JobDone) -> str:
        return describe_upscale(picture, done, self.job.options["scale"], self.limited_by, self.model)


def plan_upscale(chat_id: int, user_id: int, picture: Picture, choice: UpscaleChoice, settings: Settings,
                 messenger: JobMessenger) -> Plan:
    side, limited_by = input_side(picture, choice.scale, settings, messenger)
    device = messenger.device()
    model = choice.model_on(device)
    clock = messenger.upscale_clock
    seconds = clock.seconds(device, model, worked_pixels(picture, side))
    if seconds is not None and seconds > AFFORDABLE_SHARE * settings.job_time_limit_s:
        fast = clock.seconds(device, "general", worked_pixels(picture, side)) or 1
        return Plan(None, _("{model} would take about {minutes} min for this picture on this server, past my "
                            "limit of {limit} min. {photo} takes about {time}; or send a smaller picture.").format(
            model=upscale_model_label(model), minutes=math.ceil(seconds / 60),
            limit=round(settings.job_time_limit_s / 60), photo=upscale_model_label("general"),
            time=duration_text(fast)), limited_by, model)
    job = Job(user_id=user_id, chat_id=chat_id, op="upscale", images={"image": picture.data},
              options={**choice.job_options(), "max_side": side}, output="png")
    note = ""
    if seconds is not None and seconds > SAY_HOW_LONG_S:
        note = _("⏱ {model} takes about {time} for this picture here; /cancel stops it.").format(
            model=upscale_model_label(model), time=duration_text(seconds))
    return Plan(job, note, limited_by, model)


def duration_text(seconds: float) -> str:
    if seconds < 90:
        return _("{n} s").format(n=max(1, round(seconds / 5) * 5 if seconds > 10 else round(seconds)))
    return _("{n} min").format(n=math.ceil(seconds / 60))


def describe_upscale(picture: Picture, done: JobDone, scale: int, limited_by: str, model: str) -> str:
    """The caption: which model, the factor and sizes, and why the factor is less where it is."""
    return f"{upscale_model_label(model)} · {_factor_text(picture, done, scale, limited_by)}"


def _factor_text(picture: Picture, done: JobDone, scale: int, limited_by: str) -> str:
    size = _("{w}×{h} → {W}×{H} pixels.").format(w=picture.width, h=picture.height, W=done.width, H=done.height)
    factor = done.width / picture.width
    if factor > scale - 0.05:
        return _("Upscaled ×{scale}: {size}").format(scale=scale, size=size)
    if limited_by == "telegram":
        why = _("a full ×{scale} would be too big for Telegram to send").format(scale=scale)
    else:
        why = _("a full ×{scale} would pass this bot's size limit").format(scale=scale)
    return _("Upscaled ×{factor:.1f} rather than ×{scale}, because {why}: {size}").format(
        factor=factor, scale=scale, why=why, size=size)
