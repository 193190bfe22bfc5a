#!/bin/sh
# Make a Docker engine and compose usable for `make check-docker`: install Debian's docker.io
# and docker-compose when they are missing, and start dockerd (logging to
# ${DOCKERD_LOG:-/tmp/p2pmed-dockerd.log}) when no daemon answers. Installing and starting the
# daemon need root; with a daemon already running, nothing here does.
set -eu

install() {
    if [ "$(id -u)" != 0 ]; then
        echo "ensure-docker.sh: $1 is missing and installing it needs root" >&2
        exit 1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@"
}

command -v dockerd >/dev/null || install docker.io
docker compose version >/dev/null 2>&1 || command -v docker-compose >/dev/null || install docker-compose

if ! docker info >/dev/null 2>&1; then
    if [ "$(id -u)" != 0 ]; then
        echo "ensure-docker.sh: no Docker daemon answers and starting one needs root" >&2
        exit 1
    fi
    log=${DOCKERD_LOG:-/tmp/p2pmed-dockerd.log}
    nohup dockerd >"$log" 2>&1 &
    echo "started dockerd (pid $!), logging to $log"
    waited=0
    until docker info >/dev/null 2>&1; do
        waited=$((waited + 1))
        if [ "$waited" -gt 60 ]; then
            echo "ensure-docker.sh: dockerd did not answer within 60 s; see $log" >&2
            exit 1
        fi
        sleep 1
    done
fi
docker version --format 'docker client {{.Client.Version}}, engine {{.Server.Version}}'
