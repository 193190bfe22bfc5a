#!/bin/sh
# Build a Debian base image for the p2pmed Dockerfile from Debian's packages, with debootstrap,
# for machines that cannot pull images from a public registry:
#
#   docker/build-base.sh [TAG]        # default TAG: p2pmed-base:bookworm
#   docker build --build-arg BASE=p2pmed-base:bookworm -t p2pmed .
#
# The base is a minimal bookworm (python3 3.11, python3-venv, libgmp10, ca-certificates), so
# the Dockerfile's own apt step finds nothing left to install. Certificates this machine's
# administrator added (/usr/local/share/ca-certificates, e.g. a TLS-intercepting egress proxy's)
# are added to the base too, so that pip inside the build reaches PyPI as the host does; set
# EXTRA_CA_DIR= (empty) to leave them out. Environment: SUITE (bookworm), MIRROR
# (http://deb.debian.org/debian), EXTRA_CA_DIR. Needs root (debootstrap, chroot) and a Docker
# daemon; installs debootstrap with apt-get when it is missing.
set -eu

tag=${1:-p2pmed-base:bookworm}
suite=${SUITE:-bookworm}
mirror=${MIRROR:-http://deb.debian.org/debian}
extra_ca_dir=${EXTRA_CA_DIR-/usr/local/share/ca-certificates}

if [ "$(id -u)" != 0 ]; then
    echo "build-base.sh: debootstrap needs root" >&2
    exit 1
fi
if ! command -v debootstrap >/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q debootstrap
fi

rootfs=$(mktemp -d "${TMPDIR:-/var/tmp}/p2pmed-base.XXXXXX")
trap 'rm -rf "$rootfs"' EXIT

debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates,libgmp10 \
    "$suite" "$rootfs" "$mirror"

cat > "$rootfs/etc/apt/sources.list" <<SOURCES
deb $mirror $suite main
deb $mirror $suite-updates main
deb http://deb.debian.org/debian-security $suite-security main
SOURCES
if [ -n "$extra_ca_dir" ] && ls "$extra_ca_dir"/*.crt >/dev/null 2>&1; then
    cp "$extra_ca_dir"/*.crt "$rootfs/usr/local/share/ca-certificates/"
    chroot "$rootfs" update-ca-certificates
fi
chroot "$rootfs" apt-get clean
rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/log/*.log

tar -C "$rootfs" --numeric-owner -c . \
    | docker import --change 'ENV LANG=C.UTF-8' --change 'CMD ["/bin/bash"]' - "$tag"
docker image ls "$tag"
