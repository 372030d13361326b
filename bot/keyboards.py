"""Buttons: typed callback payloads (CallbackData) and the keyboards built from them.

Labels are translated when a keyboard is built, so every keyboard must be
built inside a handler (or another I18n context) for the user's language.
"""
from __future__ import annotations

from aiogram.filters.callback_data import CallbackData
from aiogram.types import InlineKeyboardMarkup
from aiogram.utils.i18n import gettext as _
from aiogram.utils.keyboard import InlineKeyboardBuilder

from bot.i18n import LANGUAGES
from bot.presets import Presets


class Action(CallbackData, prefix="do"):
    """Start an operation: on a picture already sent, or asking for one."""

    name: str   # style presets season upscale help lang feedback


class StyleOption(CallbackData, prefix="opt"):
    name: str   # mode strength colors
    value: str


class PresetPick(CallbackData, prefix="preset"):
    kind: str   # painting (fast style transfer) or painter (CycleGAN)
    key: str


class SeasonPick(CallbackData, prefix="season"):
    direction: str   # summer2winter winter2summer


class ResultAction(CallbackData, prefix="result"):
    name: str   # upscale another restart
    job_id: str


class LanguagePick(CallbackData, prefix="lang"):
    locale: str


STRENGTHS = (25, 50, 75, 100)
SEASONS = ("summer2winter", "winter2summer")


def main_menu() -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    builder.button(text=_("🎨 My own style"), callback_data=Action(name="style"))
    builder.button(text=_("🖼 Famous paintings"), callback_data=Action(name="presets"))
    builder.button(text=_("❄️ Summer ⇄ winter"), callback_data=Action(name="season"))
    builder.button(text=_("🔍 Upscale ×4"), callback_data=Action(name="upscale"))
    builder.button(text=_("🌐 Language"), callback_data=Action(name="lang"))
    builder.button(text=_("❓ Help"), callback_data=Action(name="help"))
    builder.adjust(2)
    return builder.as_markup()


def picture_menu() -> InlineKeyboardMarkup:
    """What to do with a picture that came with no operation chosen."""
    builder = InlineKeyboardBuilder()
    builder.button(text=_("🖼 Paint like a famous painting"), callback_data=Action(name="presets"))
    builder.button(text=_("🎨 Paint in a style I'll send"), callback_data=Action(name="style"))
    builder.button(text=_("❄️ Summer ⇄ winter"), callback_data=Action(name="season"))
    builder.button(text=_("🔍 Upscale ×4"), callback_data=Action(name="upscale"))
    builder.adjust(1)
    return builder.as_markup()


def style_options(mode: str, strength: int, preserve_colors: bool) -> InlineKeyboardMarkup:
    """The /style knobs; the current choice carries a tick."""
    def ticked(label: str, on: bool) -> str:
        return f"✅ {label}" if on else label

    builder = InlineKeyboardBuilder()
    builder.button(text=ticked(_("⚡ Fast"), mode == "fast"), callback_data=StyleOption(name="mode", value="fast"))
    builder.button(text=ticked(_("💎 Quality (slow)"), mode == "quality"),
                   callback_data=StyleOption(name="mode", value="quality"))
    for percent in STRENGTHS:
        builder.button(text=ticked(f"{percent}%", strength == percent),
                       callback_data=StyleOption(name="strength", value=str(percent)))
    builder.button(text=ticked(_("Keep my photo's colours"), preserve_colors),
                   callback_data=StyleOption(name="colors", value="off" if preserve_colors else "on"))
    builder.adjust(2, len(STRENGTHS), 1)
    return builder.as_markup()


def presets_menu(presets: Presets) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    for painting in presets.paintings.values():
        builder.button(text=painting.caption, callback_data=PresetPick(kind="painting", key=painting.key))
    for painter in presets.painters.values():
        builder.button(text=_("In the manner of {painter}").format(painter=painter.caption),
                       callback_data=PresetPick(kind="painter", key=painter.key))
    builder.adjust(1)
    return builder.as_markup()


def seasons_menu() -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    builder.button(text=_("☀️ Summer → winter ❄️"), callback_data=SeasonPick(direction="summer2winter"))
    builder.button(text=_("❄️ Winter → summer ☀️"), callback_data=SeasonPick(direction="winter2summer"))
    builder.adjust(1)
    return builder.as_markup()


def result_menu(job_id: str, *, can_upscale: bool) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    if can_upscale:
        builder.button(text=_("🔍 Upscale this"), callback_data=ResultAction(name="upscale", job_id=job_id))
    builder.button(text=_("🎨 Try another style"), callback_data=ResultAction(name="another", job_id=job_id))
    builder.button(text=_("🔄 Start over"), callback_data=ResultAction(name="restart", job_id=job_id))
    builder.adjust(1)
    return builder.as_markup()


def languages_menu() -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    for locale, name in LANGUAGES.items():
        builder.button(text=name, callback_data=LanguagePick(locale=locale))
    return builder.as_markup()
