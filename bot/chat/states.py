"""The dialogs' steps. Each waits for one thing from the user.

Kept here, not in the feature modules, because dialogs hand over to each
other: a picture sent with no operation can go on into any of them.
"""
from aiogram.fsm.state import State, StatesGroup


class StyleDialog(StatesGroup):
    waiting_style = State()
    waiting_content = State()


class PresetDialog(StatesGroup):
    waiting_picture = State()
    waiting_sheet_picture = State()   # for the preview of every painting


class SeasonDialog(StatesGroup):
    waiting_picture = State()


class UpscaleDialog(StatesGroup):
    waiting_picture = State()


class MixDialog(StatesGroup):
    waiting_second = State()   # the second painting: a preset's button or the user's own picture


class FeedbackDialog(StatesGroup):
    waiting_text = State()


# States in which the next message should be a picture.
WAITING_FOR_PICTURE = (StyleDialog.waiting_style, StyleDialog.waiting_content, PresetDialog.waiting_picture,
                       PresetDialog.waiting_sheet_picture, SeasonDialog.waiting_picture, UpscaleDialog.waiting_picture,
                       MixDialog.waiting_second)
