"""What a user chose for /upscale (model, scale, denoise), kept in their profile, and how long it takes here.

The choice lives in the profile (bot/chat/i18n.py's profile destiny, which
Redis keeps when REDIS_URL is set), beside the language: a preference that
outlives every dialog. No choice means today's defaults: the device's model
(the compact general one on a CPU, x4plus on a GPU), x4, medium denoise.

`UpscaleClock` learns the seconds per input megapixel of each model from the
jobs this bot has finished (their JobDone), starting from what the bench
measured on a 2-core CPU, so what the buttons and the status message say
about time is this host's, not a guess made elsewhere.
"""
from __future__ import annotations

from dataclasses import dataclass

from aiogram.fsm.context import FSMContext

from bot.chat.i18n import profile_of

MODELS = ("general", "x4plus", "anime")   # nets.compare.COMPARED: the compare sheet's order
SCALES = (2, 3, 4)
# The general model's denoise: 1 is realesr-general-x4v3 alone, 0 its weak-denoise twin
# (wdn) alone, between them upstream's blend of the two; 0.5 is upstream's default.
DENOISE = {"off": 0.0, "medium": 0.5, "strong": 1.0}
DEFAULT_SCALE = 4
DEFAULT_DENOISE = "medium"
PROFILE_KEY = "upscale"


def device_model(device: str) -> str:
    """The model for no choice: nets.upscale's "auto" (x4plus on CUDA, general elsewhere)."""
    return "x4plus" if device_kind(device) == "cuda" else "general"


@dataclass(frozen=True)
class UpscaleChoice:
    model: str | None = None    # None: the device's model
    scale: int = DEFAULT_SCALE
    denoise: str = DEFAULT_DENOISE

    def model_on(self, device: str) -> str:
        return self.model or device_model(device)

    def job_options(self) -> dict:
        """The engine's keyword arguments for this choice (nets.engine.Engine.upscale)."""
        return {"model": self.model or "auto", "scale": self.scale, "denoise": DENOISE[self.denoise]}

    def as_data(self) -> dict:
        return {"model": self.model, "scale": self.scale, "denoise": self.denoise}

    @classmethod
    def from_data(cls, data: dict | None) -> UpscaleChoice:
        """Whatever the profile holds, checked: a value from an older version falls back to the default."""
        data = data or {}
        model = data.get("model") if data.get("model") in MODELS else None
        scale = data.get("scale") if data.get("scale") in SCALES else DEFAULT_SCALE
        denoise = data.get("denoise") if data.get("denoise") in DENOISE else DEFAULT_DENOISE
        return cls(model, scale, denoise)


async def upscale_choice(state: FSMContext) -> UpscaleChoice:
    return UpscaleChoice.from_data(await profile_of(state).get_value(PROFILE_KEY))


async def choose(state: FSMContext, **change) -> UpscaleChoice:
    """Change one part of the user's choice (model=..., scale=..., denoise=...) and keep it."""
    choice = UpscaleChoice.from_data({**(await upscale_choice(state)).as_data(), **change})
    await profile_of(state).update_data({PROFILE_KEY: choice.as_data()})
    return choice


# Seconds per input megapixel on the CPU, fp32, 2 threads, as scripts/bench.py and a
# side-by-side run measured them on a 2-core AMD EPYC (Zen 3) shared with other work
# (x4plus 21 to 31 times general's time per pixel, anime about 5 times; README,
# "Upscaling"). The clock starts from these and follows what this host really does;
# a GPU starts unknown and is learned from its first jobs.
CPU_SECONDS_PER_MEGAPIXEL = {"general": 40.0, "x4plus": 1200.0, "anime": 200.0}
LEARNING_RATE = 0.3   # how far one finished job moves the estimate


def device_kind(device: str) -> str:
    return "cuda" if device.startswith("cuda") else "cpu"


class UpscaleClock:
    def __init__(self, cpu_seeds: dict[str, float] | None = None):
        seeds = CPU_SECONDS_PER_MEGAPIXEL if cpu_seeds is None else cpu_seeds
        self._per_megapixel: dict[tuple[str, str], float] = {("cpu", model): s for model, s in seeds.items()}

    def record(self, device: str, model: str, input_pixels: int, seconds: float) -> None:
        if input_pixels < 64 * 64 or seconds <= 0:
            return   # tiny pictures time the overheads, not the network
        key = (device_kind(device), model)
        measured = seconds / (input_pixels / 1e6)
        known = self._per_megapixel.get(key)
        self._per_megapixel[key] = measured if known is None else known + LEARNING_RATE * (measured - known)

    def seconds(self, device: str, model: str, input_pixels: int) -> float | None:
        per_megapixel = self._per_megapixel.get((device_kind(device), model))
        return None if per_megapixel is None else per_megapixel * input_pixels / 1e6

    def slower(self, device: str, model: str, than: str = "general") -> float | None:
        """How many times slower `model` is than `than` here, or None before both are known."""
        kind = device_kind(device)
        mine, theirs = self._per_megapixel.get((kind, model)), self._per_megapixel.get((kind, than))
        return None if not mine or not theirs else mine / theirs
