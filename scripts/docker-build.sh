#!/usr/bin/env bash
# Build the bot's Docker image and print its size.
#   scripts/docker-build.sh cpu  [--synthetic] [-- EXTRA DOCKER BUILD ARGS]   -> stylebot:cpu
#   scripts/docker-build.sh cuda [--synthetic] [-- EXTRA DOCKER BUILD ARGS]   -> stylebot:cuda
# --synthetic bakes random weights of the real layout and generated preset
# pictures (no downloads; for offline builds and CI).
# Environment:
#   TORCH_INDEX_URL       the CPU image's torch index (default: PyTorch's CPU index)
#   TORCH_CUDA_INDEX_URL  the CUDA image's torch index (default: PyTorch's CUDA 12.6 index)
#   DOCKER                the docker client to use (default: one that can build with BuildKit)
# A set index URL also builds with --network host, so that an index on this
# machine's 127.0.0.1 (../shared/tools/docker-sandbox.sh serves one) is reachable.
set -euo pipefail
cd "$(dirname "$0")/.."

usage() { echo "usage: $0 cpu|cuda [--synthetic] [-- docker build args...]" >&2; exit 2; }

flavour=${1:-}
case "$flavour" in
    cpu) dockerfile=Dockerfile; index=${TORCH_INDEX_URL:-} ;;
    cuda) dockerfile=Dockerfile.cuda; index=${TORCH_CUDA_INDEX_URL:-} ;;
    *) usage ;;
esac
shift
weights=download
extra=()
while (($#)); do
    case "$1" in
        --synthetic) weights=synthetic ;;
        --) shift; extra=("$@"); break ;;
        *) usage ;;
    esac
    shift
done

# The Dockerfiles use BuildKit (cache mounts). A client with the buildx plugin
# builds with it; a client from before Docker 23 has BuildKit built in.
pick_docker() {
    local candidate version
    for candidate in ${DOCKER:-} docker /usr/bin/docker; do
        command -v "$candidate" >/dev/null || continue
        if "$candidate" buildx version >/dev/null 2>&1; then echo "$candidate"; return; fi
        version=$("$candidate" version --format '{{.Client.Version}}' 2>/dev/null || true)
        if [[ "${version%%.*}" =~ ^[0-9]+$ ]] && ((${version%%.*} < 23)); then echo "$candidate"; return; fi
    done
    echo "docker-build.sh: no docker client that can build with BuildKit (install the buildx plugin)" >&2
    exit 1
}
docker=$(pick_docker)

args=(--file "$dockerfile" --tag "stylebot:$flavour" --build-arg "WEIGHTS=$weights")
if [[ -n "$index" ]]; then
    args+=(--build-arg "TORCH_INDEX_URL=$index" --network host)
fi

start=$SECONDS
DOCKER_BUILDKIT=1 "$docker" build "${args[@]}" "${extra[@]}" .
echo "built stylebot:$flavour ($weights weights) in $((SECONDS - start)) s"
"$docker" images "stylebot:$flavour" --format 'stylebot:{{.Tag}} {{.Size}} ({{.ID}})'
