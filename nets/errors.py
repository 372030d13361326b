"""Errors the engine raises on purpose.

Each carries a stable `code` that a front end (the bot, the CLI) maps to its
own wording, and an English `message` that is already fit to show a person.
This module imports nothing heavy, so the bot can catch these without torch.
"""


class NetsError(Exception):
    code = "error"

    def __init__(self, message: str, code: str | None = None):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class ImageError(NetsError):
    """The bytes are not a picture we can work on.

    codes: empty, not_image, corrupt, too_large (over the pixel cap),
    bomb (Pillow's decompression-bomb guard), unsupported.
    """

    code = "not_image"


class WeightsError(NetsError):
    """Weights are missing, damaged or could not be downloaded.

    codes: missing, checksum, download, layout.
    """

    code = "missing"


class OutOfMemory(NetsError):
    """The device had no memory left for this picture (torch's OutOfMemoryError,
    or a failed host allocation); a smaller picture would fit."""

    code = "out_of_memory"


class Cancelled(NetsError):
    """The caller's cancel event was set; raised between steps or tiles."""

    code = "cancelled"

    def __init__(self, message: str = "cancelled"):
        super().__init__(message)


def first_line(exc: BaseException) -> str:
    """An exception's first line, for a one-line error message."""
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]
