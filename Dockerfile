# stylebot, CPU image: the bot, the CPU build of torch, the CPU weight group
# and the preset paintings. Build with scripts/docker-build.sh cpu [--synthetic];
# run with `docker run --env-file .env stylebot:cpu` (docs/docker.md).
#
#   --build-arg TORCH_INDEX_URL=...   where the CPU torch wheel comes from
#   --build-arg WEIGHTS=synthetic     random weights of the real layout (offline builds, CI)
#
# Size matters (a 4 GB playground, registries that count bytes): the venv
# stage installs and prunes, the assets stage downloads, and the image copies
# only what runs. docs/docker.md has the size of each step.

FROM python:3.11-slim AS venv-full
SHELL ["/bin/bash", "-euo", "pipefail", "-c"]

# strip(1) and readelf(1) for the shared libraries. Not pinned: this is the
# build stage's tool, and the image never sees binutils.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends binutils \
 && rm -rf /var/lib/apt/lists/*

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH
RUN python -m venv /opt/venv

# torch from the CPU index alone (--no-deps keeps pip from ever reaching for a
# CUDA build on PyPI), then the requirements, with torch's own dependencies
# from PyPI so that pip sees a complete install.
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ARG TORCH_VERSION=2.13.0
RUN --mount=type=cache,target=/root/.cache/pip \
    pip install --no-compile --no-deps --index-url "$TORCH_INDEX_URL" "torch==${TORCH_VERSION}"
COPY requirements-cpu.txt /tmp/
RUN --mount=type=cache,target=/root/.cache/pip \
    pip install --no-compile -r /tmp/requirements-cpu.txt "torch==${TORCH_VERSION}"


# Prune the venv to what the bot and its workers load, and prove that what is
# left still imports and runs (scripts/prune_venv.py says how; docs/docker.md
# has the size after each step).
FROM venv-full AS venv
COPY scripts/prune_venv.py /tmp/
RUN python /tmp/prune_venv.py /opt/venv


# Weights and preset paintings, downloaded into cache mounts so that a code
# change does not download them again. Built on the unpruned venv, with onnx
# added: the lite style weights are converted from ONNX files here, and onnx
# never reaches the image.
FROM venv-full AS assets
SHELL ["/bin/bash", "-euo", "pipefail", "-c"]
RUN --mount=type=cache,target=/root/.cache/pip \
    pip install --no-compile onnx==1.23.2
ARG WEIGHTS=download
WORKDIR /src
COPY nets/ nets/
COPY scripts/fetch_weights.py scripts/
RUN --mount=type=cache,target=/cache \
    case "$WEIGHTS" in \
      download) synthetic= ;; \
      synthetic) synthetic=yes ;; \
      *) echo "WEIGHTS must be download or synthetic, not '$WEIGHTS'" >&2; exit 2 ;; \
    esac; \
    python scripts/fetch_weights.py --group cpu ${synthetic:+--synthetic} --dest "/cache/weights-cpu-$WEIGHTS"; \
    mkdir -p /opt/stylebot; \
    cp -a "/cache/weights-cpu-$WEIGHTS" /opt/stylebot/weights; \
    echo "weights: $(du -sm /opt/stylebot/weights | cut -f1) MB"
# Downloaded and checked against presets/paintings.json, or generated
# pictures under the same captions when the weights are synthetic.
COPY presets/paintings.json presets/
COPY scripts/make_presets.py scripts/
RUN --mount=type=cache,target=/cache \
    if [ "$WEIGHTS" = synthetic ]; then synthetic=yes; else synthetic=; fi; \
    python scripts/make_presets.py ${synthetic:+--synthetic} --cache /cache/presets --dest /opt/stylebot/presets; \
    echo "presets: $(du -sm /opt/stylebot/presets | cut -f1) MB"


# The base the image runs on: python:3.11-slim less what only installs
# software (pip, setuptools, ensurepip, apt, dpkg and the Perl they need) or
# translates the messages of system tools. Copied whole into a scratch image
# below, so the deletions really leave the image instead of hiding under a
# later layer. Nothing is ever installed into a running bot.
FROM python:3.11-slim AS runtime-base
SHELL ["/bin/bash", "-euo", "pipefail", "-c"]
# DejaVu Sans for the preview sheet's labels (accents, dashes, Cyrillic;
# Pillow's own font is ASCII only): the one file of fonts-dejavu-core that is
# used. Not pinned, like binutils: apt leaves the image below.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends fonts-dejavu-core \
 && find /usr/share/fonts/truetype/dejavu -type f ! -name DejaVuSans.ttf -delete \
 && rm -rf /var/lib/apt/lists/*
RUN groupadd --system --gid 10001 stylebot; \
    useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /app --shell /usr/sbin/nologin stylebot; \
    stdlib=$(python -c 'import sysconfig; print(sysconfig.get_paths()["stdlib"])'); \
    rm -rf "$stdlib"/ensurepip "$stdlib"/idlelib "$stdlib"/lib2to3 "$stdlib"/turtledemo "$stdlib"/tkinter \
           "$stdlib"/pydoc_data /usr/share/perl5 /var/log/* \
           /usr/local/lib/python3*/site-packages/pip* /usr/local/lib/python3*/site-packages/setuptools* \
           /usr/local/lib/python3*/site-packages/wheel* /usr/local/bin/pip* \
           /usr/lib/python3/dist-packages/pip* /usr/lib/python3/dist-packages/setuptools* \
           /usr/lib/python3/dist-packages/wheel* /usr/lib/python3/dist-packages/pkg_resources \
           /usr/lib/python3/dist-packages/_distutils_hack /usr/lib/python3/dist-packages/distutils-precedence.pth \
           /usr/share/python-wheels /usr/share/locale/* /usr/share/doc/* /usr/share/man/* /usr/share/info/* \
           /var/lib/apt/lists/* /var/cache/apt/* /var/cache/debconf/*-old; \
    packaging=(apt libapt-pkg6.0 gpgv debian-archive-keyring perl-base libdb5.3 libgnutls30 libp11-kit0 libtasn1-6); \
    mapfile -t installed < <(dpkg-query -W -f '${Package}\n' "${packaging[@]}" 2>/dev/null || true); \
    DEBIAN_FRONTEND=noninteractive dpkg --purge --force-remove-essential --force-depends "${installed[@]}"; \
    dpkg --purge --force-remove-essential --force-depends dpkg


FROM scratch

LABEL org.opencontainers.image.title="stylebot (CPU)" \
      org.opencontainers.image.description="Telegram bot: style transfer, CycleGAN painters, Real-ESRGAN upscaling"

# hadolint ignore=DL3067
COPY --from=runtime-base / /
COPY --from=venv /opt/venv /opt/venv
COPY --from=assets /opt/stylebot /opt/stylebot
COPY nets/ /app/nets/
COPY bot/ /app/bot/

# CPU defaults. MAX_SIDE 1024: an AdaIN or CycleGAN job at that side peaks
# at about 1.3 GB (docs/sandbox.md), so one worker fits a 4 GB host with room
# for the bot and the queued pictures. Torch's threads are not set here:
# that is the engine's choice (nets/device.py).
ENV PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    LANG=C.UTF-8 \
    VIRTUAL_ENV=/opt/venv \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    WEIGHTS_DIR=/opt/stylebot/weights \
    PRESETS_DIR=/opt/stylebot/presets \
    DEVICE=cpu \
    MAX_SIDE=1024

WORKDIR /app

# The image checks itself: the bot's modules import, the presets load, and the
# engine runs each kind of network on a small picture. Run once as root, which
# leaves bytecode for what that imports from the code and the standard
# library, then as the user the bot runs as.
ARG IMAGE_CHECK="\
from pathlib import Path; from PIL import Image; \
import bot.app, bot.jobs.celery_queue, bot.jobs.celery_worker; from bot.presets import load_paintings; from nets.engine import Engine; \
assert load_paintings(Path('/opt/stylebot/presets')), 'no preset paintings'; \
img = Image.linear_gradient('L').convert('RGB').resize((96, 64)); \
import os; engine = Engine('/opt/stylebot/weights', device='cpu', max_side=64, precision=os.environ.get('CPU_PRECISION', 'auto')); \
engine.stylize(img, img, model='lite', style_key='check'); engine.stylize(img, img, model='adain', style_key='check'); \
engine.preview_sheet(img, [img, img], labels=['Cézanne — à', 'Шишкин']); engine.stylize_quality(img, img, steps=2); \
engine.translate(img, 'monet'); engine.upscale(img.resize((24, 16))); \
engine.upscale_compare(img, labels=['general', 'x4plus', 'anime']); engine.stylize(img, img, mix_with=img, mix=0.5); \
from nets.compare import before_after; before_after(img, img.resize((384, 256))); \
print('image check passed in', engine.precision, '-', engine.precision_reason)"
RUN env -u PYTHONDONTWRITEBYTECODE python -c "$IMAGE_CHECK"
USER 10001:10001
RUN python -c "$IMAGE_CHECK"

# Healthy while the bot's event loop answers (it rewrites a heartbeat file
# every 5 s; older than 30 s means the loop is stuck) and the bot has a live
# job worker, a child started by multiprocessing's spawn (a dead one is
# replaced within seconds). Three failed checks in a row: unhealthy. Reads
# /proc and the heartbeat only; Telegram is not called (bot/operator/health.py).
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-m", "bot.operator.health"]

# `docker run IMAGE` runs the bot; `docker run IMAGE worker` a worker host for a bot that runs
# anywhere (JOB_BACKEND=celery, README "More machines"), needing only REDIS_URL.
ENTRYPOINT ["python", "-m", "bot"]
CMD []
