"""Buttons: typed callback payloads (CallbackData) and the keyboards built from them.

Labels are translated when a keyboard is built, so every keyboard must be
built inside a handler (or another I18n context) for the user's language.
"""
from __future__ import annotations

from aiogram.filters.callback_data import CallbackData
from aiogram.types import InlineKeyboardMarkup
from aiogram.utils.i18n import gettext as _
from aiogram.utils.keyboard import InlineKeyboardBuilder

from bot.chat.i18n import LANGUAGES
from bot.chat.upscale_options import DENOISE as DENOISE_LEVELS
from bot.chat.upscale_options import MODELS as UPSCALE_MODELS
from bot.chat.upscale_options import SCALES as UPSCALE_SCALES
from bot.presets import Presets
from nets.catalog import FAST_STYLES


class Action(CallbackData, prefix="do"):
    """Start an operation: on a picture already sent, or asking for one."""

    name: str   # style presets sheet season upscale help lang feedback


class StyleOption(CallbackData, prefix="opt"):
    name: str   # mode (lite adain quality) strength colors
    value: str


class PresetModel(CallbackData, prefix="pmodel"):
    """Which fast network paints the preset paintings: lite or adain."""

    model: str


class SheetPick(CallbackData, prefix="tile"):
    """A tile of a preview sheet: the sheet's job and the tile's place on it (from 0)."""

    job_id: str
    index: int


class PresetPick(CallbackData, prefix="preset"):
    kind: str   # painting (fast style transfer) or painter (CycleGAN)
    key: str


class SeasonPick(CallbackData, prefix="season"):
    direction: str   # summer2winter winter2summer


class ResultAction(CallbackData, prefix="result"):
    name: str   # upscale sheet another restart resend before_after compare mix
    job_id: str


class MixPick(CallbackData, prefix="mixwith"):
    """A preset painting as the second one of a mix."""

    key: str


class MixShare(CallbackData, prefix="mix"):
    """One share of the second painting from a sheet of mixes: that mix at full size."""

    job_id: str
    percent: int


class LanguagePick(CallbackData, prefix="lang"):
    locale: str


class UpscaleOption(CallbackData, prefix="up"):
    """A choice under /upscale: name model (general x4plus anime), scale (2 3 4), denoise (off medium
    strong), or compare (on off: the picture to come gets the compare sheet first)."""

    name: str
    value: str


class UpscaleGo(CallbackData, prefix="upgo"):
    """Under the choices, with a picture already there: what (run, compare)."""

    what: str


class AlbumUpscale(CallbackData, prefix="album"):
    """ "Upscale the whole album" under an album's menu: the album's media_group_id."""

    album: str


class ComparePick(CallbackData, prefix="cmp"):
    """A model's button under a compare sheet: its full result."""

    job_id: str
    model: str


STRENGTHS = (25, 50, 75, 100)
SEASONS = ("summer2winter", "winter2summer")
FAST_MODELS = FAST_STYLES   # the buttons offer every fast network the engine has
SHEET_ROW = 4   # number buttons per row under a preview sheet
MIX_SHARES = (25, 50, 75)   # percent of the second painting in a mix


def model_label(model: str) -> str:
    """What people see of the two fast networks: what they get, not what they are called."""
    return _("⚡ Fast") if model == "lite" else _("🎨 Detailed")


def main_menu() -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    builder.button(text=_("🎨 My own style"), callback_data=Action(name="style"))
    builder.button(text=_("🖼 Famous paintings"), callback_data=Action(name="presets"))
    builder.button(text=_("❄️ Summer ⇄ winter"), callback_data=Action(name="season"))
    builder.button(text=_("🔍 Upscale"), callback_data=Action(name="upscale"))
    builder.button(text=_("🌐 Language"), callback_data=Action(name="lang"))
    builder.button(text=_("❓ Help"), callback_data=Action(name="help"))
    builder.adjust(2)
    return builder.as_markup()


def picture_menu(*, album: str | None = None) -> InlineKeyboardMarkup:
    """What to do with a picture that came with no operation chosen (album: the media_group_id
    of the album it came first in)."""
    builder = InlineKeyboardBuilder()
    if album:
        builder.button(text=_("🔍 Upscale the whole album"), callback_data=AlbumUpscale(album=album))
    builder.button(text=_("🖼 Paint like a famous painting"), callback_data=Action(name="presets"))
    builder.button(text=_("🎨 Paint in a style I'll send"), callback_data=Action(name="style"))
    builder.button(text=_("❄️ Summer ⇄ winter"), callback_data=Action(name="season"))
    builder.button(text=_("🔍 Upscale"), callback_data=Action(name="upscale"))
    builder.adjust(1)
    return builder.as_markup()


def style_options(mode: str, strength: int, preserve_colors: bool) -> InlineKeyboardMarkup:
    """The /style knobs; the current choice carries a tick."""
    def ticked(label: str, on: bool) -> str:
        return f"✅ {label}" if on else label

    builder = InlineKeyboardBuilder()
    for model in FAST_MODELS:
        builder.button(text=ticked(model_label(model), mode == model), callback_data=StyleOption(name="mode", value=model))
    builder.button(text=ticked(_("💎 Quality (slow)"), mode == "quality"),
                   callback_data=StyleOption(name="mode", value="quality"))
    for percent in STRENGTHS:
        builder.button(text=ticked(f"{percent}%", strength == percent),
                       callback_data=StyleOption(name="strength", value=str(percent)))
    builder.button(text=ticked(_("Keep my photo's colours"), preserve_colors),
                   callback_data=StyleOption(name="colors", value="off" if preserve_colors else "on"))
    builder.adjust(len(FAST_MODELS) + 1, len(STRENGTHS), 1)
    return builder.as_markup()


def presets_menu(presets: Presets, model: str) -> InlineKeyboardMarkup:
    """The paintings (painted by `model`, which the top row switches), a preview of them all, the painters."""
    builder = InlineKeyboardBuilder()
    sizes = []
    if presets.paintings:
        for choice in FAST_MODELS:
            label = model_label(choice)
            builder.button(text=f"✅ {label}" if choice == model else label, callback_data=PresetModel(model=choice))
        builder.button(text=_("🖼 All paintings on my photo"), callback_data=Action(name="sheet"))
        sizes += [len(FAST_MODELS), 1]
    for painting in presets.paintings.values():
        builder.button(text=painting.caption, callback_data=PresetPick(kind="painting", key=painting.key))
    for painter in presets.painters.values():
        builder.button(text=_("In the manner of {painter}").format(painter=painter.caption),
                       callback_data=PresetPick(kind="painter", key=painter.key))
    builder.adjust(*sizes, 1)
    return builder.as_markup()


def seasons_menu() -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    builder.button(text=_("☀️ Summer → winter ❄️"), callback_data=SeasonPick(direction="summer2winter"))
    builder.button(text=_("❄️ Winter → summer ☀️"), callback_data=SeasonPick(direction="winter2summer"))
    builder.adjust(1)
    return builder.as_markup()


def result_menu(job_id: str, *, can_upscale: bool, can_preview: bool = False,
                can_mix: bool = False) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    if can_upscale:
        builder.button(text=_("🔍 Upscale this"), callback_data=ResultAction(name="upscale", job_id=job_id))
    if can_preview:
        builder.button(text=_("🖼 My photo in every painting"), callback_data=ResultAction(name="sheet", job_id=job_id))
    if can_mix:
        builder.button(text=_("🎭 Mix with another painting"), callback_data=ResultAction(name="mix", job_id=job_id))
    builder.button(text=_("🎨 Try another style"), callback_data=ResultAction(name="another", job_id=job_id))
    builder.button(text=_("🔄 Start over"), callback_data=ResultAction(name="restart", job_id=job_id))
    builder.adjust(1)
    return builder.as_markup()


def resend_menu(job_id: str) -> InlineKeyboardMarkup:
    """Under "your picture may not have arrived": the user, who sees the chat, decides."""
    builder = InlineKeyboardBuilder()
    builder.button(text=_("📩 Send it again"), callback_data=ResultAction(name="resend", job_id=job_id))
    return builder.as_markup()


def sheet_menu(job_id: str, count: int) -> InlineKeyboardMarkup:
    """Under a preview sheet: one button per tile, numbered as on the sheet, then the way out."""
    builder = InlineKeyboardBuilder()
    for index in range(count):
        builder.button(text=str(index + 1), callback_data=SheetPick(job_id=job_id, index=index))
    builder.button(text=_("🔄 Start over"), callback_data=ResultAction(name="restart", job_id=job_id))
    rows = [SHEET_ROW] * (count // SHEET_ROW) + ([count % SHEET_ROW] if count % SHEET_ROW else [])
    builder.adjust(*rows, 1)
    return builder.as_markup()


def mix_second_menu(presets: Presets, leave_out: str | None = None) -> InlineKeyboardMarkup:
    """The preset paintings that can be the second of a mix (all but the first one)."""
    builder = InlineKeyboardBuilder()
    for painting in presets.paintings.values():
        if painting.key != leave_out:
            builder.button(text=painting.caption, callback_data=MixPick(key=painting.key))
    builder.adjust(1)
    return builder.as_markup()


def mix_shares_menu(job_id: str) -> InlineKeyboardMarkup:
    """Under a sheet of mixes: one button per share, as numbered on the sheet, then the way out."""
    builder = InlineKeyboardBuilder()
    for number, percent in enumerate(MIX_SHARES, start=1):
        builder.button(text=f"{number}. {percent}%", callback_data=MixShare(job_id=job_id, percent=percent))
    builder.button(text=_("🔄 Start over"), callback_data=ResultAction(name="restart", job_id=job_id))
    builder.adjust(len(MIX_SHARES), 1)
    return builder.as_markup()


def languages_menu() -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    for locale, name in LANGUAGES.items():
        builder.button(text=name, callback_data=LanguagePick(locale=locale))
    return builder.as_markup()


# --- upscaling: the choices, the compare sheet, the result ----------------------------------



def upscale_model_name(model: str) -> str:
    """What people see of the three upscalers: what each is for, not what it is called (no emoji:
    the compare sheet's font has none)."""
    if model == "x4plus":
        return _("Photo, finest")
    return _("Drawing / anime") if model == "anime" else _("Photo")


def upscale_model_label(model: str, slower: float | None = None) -> str:
    """The name on a button; x4plus says how much slower it is on this host, once that is known."""
    label = {"x4plus": "🔬", "anime": "🎌"}.get(model, "📷") + " " + upscale_model_name(model)
    if model == "x4plus" and slower is not None and slower >= 1.5:
        label += " " + _("({n}× slower here)").format(n=round(slower))
    return label


def upscale_menu(model: str, scale: int, denoise: str, *, slower: float | None,
                    compare_first: bool | None) -> InlineKeyboardMarkup:
    """The /upscale choices, the current ones ticked. compare_first None: a picture is
    there, so the last row runs it; True/False: the toggle for the picture to come."""
    def ticked(label: str, on: bool) -> str:
        return f"✅ {label}" if on else label

    builder = InlineKeyboardBuilder()
    for choice in UPSCALE_MODELS:
        builder.button(text=ticked(upscale_model_label(choice, slower), choice == model),
                       callback_data=UpscaleOption(name="model", value=choice))
    for choice in UPSCALE_SCALES:
        builder.button(text=ticked(f"×{choice}", choice == scale), callback_data=UpscaleOption(name="scale",
                                                                                               value=str(choice)))
    sizes = [1] * len(UPSCALE_MODELS) + [len(UPSCALE_SCALES)]
    if model == "general":   # only the general model has a denoise knob
        labels = {"off": _("Denoise: off"), "medium": _("medium"), "strong": _("strong")}
        for level in DENOISE_LEVELS:
            builder.button(text=ticked(labels[level], level == denoise),
                           callback_data=UpscaleOption(name="denoise", value=level))
        sizes.append(len(DENOISE_LEVELS))
    if compare_first is None:
        builder.button(text=_("▶️ Upscale"), callback_data=UpscaleGo(what="run"))
        builder.button(text=_("🔍 Compare the models first"), callback_data=UpscaleGo(what="compare"))
        sizes.append(2)
    else:
        builder.button(text=ticked(_("🔍 Compare the models first"), compare_first),
                       callback_data=UpscaleOption(name="compare", value="off" if compare_first else "on"))
        sizes.append(1)
    builder.adjust(*sizes)
    return builder.as_markup()


def compare_menu(job_id: str, slower: float | None) -> InlineKeyboardMarkup:
    """Under a compare sheet: one button per model, its full result; then the way out."""
    builder = InlineKeyboardBuilder()
    for model in UPSCALE_MODELS:
        builder.button(text=upscale_model_label(model, slower), callback_data=ComparePick(job_id=job_id, model=model))
    builder.button(text=_("🔄 Start over"), callback_data=ResultAction(name="restart", job_id=job_id))
    builder.adjust(1)
    return builder.as_markup()


def upscale_result_menu(job_id: str) -> InlineKeyboardMarkup:
    """Under an upscaled picture (a document, whose preview hides the detail): the detail at 1:1."""
    builder = InlineKeyboardBuilder()
    builder.button(text=_("🔎 Before and after, 1:1"), callback_data=ResultAction(name="before_after", job_id=job_id))
    builder.button(text=_("🔍 Compare the models"), callback_data=ResultAction(name="compare", job_id=job_id))
    builder.button(text=_("🎨 Try another style"), callback_data=ResultAction(name="another", job_id=job_id))
    builder.button(text=_("🔄 Start over"), callback_data=ResultAction(name="restart", job_id=job_id))
    builder.adjust(1)
    return builder.as_markup()


def large_picture_menu() -> InlineKeyboardMarkup:
    """For a picture already larger than the workers' working size: see first, or go on anyway."""
    builder = InlineKeyboardBuilder()
    builder.button(text=_("🔍 Compare the models on a part, at full size"), callback_data=UpscaleGo(what="compare_full"))
    builder.button(text=_("▶️ Upscale anyway"), callback_data=UpscaleGo(what="anyway"))
    builder.adjust(1)
    return builder.as_markup()
