# p2pmed node image: `docker build -t p2pmed .`, then see compose.yaml for a 4-node network.
#
# BASE is any Debian bookworm image: the official debian:bookworm-slim by default, or one built
# from Debian's packages with debootstrap where no registry can be reached
# (`docker/build-base.sh`, then `--build-arg BASE=p2pmed-base:bookworm`). The node runs on
# Debian's python3 (3.11) from a virtual environment in /opt/p2pmed.
ARG BASE=debian:bookworm-slim

# Debian's python3 and GMP (py-libp2p's fastecdsa), installed only if the base lacks them, and
# the unprivileged user the node runs as.
FROM ${BASE} AS runtime
RUN packages="python3 python3-venv libgmp10 ca-certificates"; \
    if ! dpkg -s $packages >/dev/null 2>&1; then \
        apt-get update \
        && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $packages \
        && rm -rf /var/lib/apt/lists/*; \
    fi \
 && useradd --create-home --uid 10001 p2pmed \
 && mkdir /data \
 && chown p2pmed:p2pmed /data \
 && chmod 0700 /data

# The package and its dependencies from PyPI (PIP_CERT: the system's CA bundle, which a
# debootstrap'd base extends with this machine's own certificates). py-libp2p's fastecdsa has
# no wheel for Linux: it compiles against GMP, with a compiler that stays in this stage.
FROM runtime AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends gcc libc6-dev python3-dev libgmp-dev \
 && rm -rf /var/lib/apt/lists/*
ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN python3 -m venv /opt/p2pmed
WORKDIR /src
COPY pyproject.toml README.md ./
COPY p2pmed ./p2pmed
RUN /opt/p2pmed/bin/pip install . \
 && /opt/p2pmed/bin/pip uninstall -y pip

FROM runtime
COPY --from=build /opt/p2pmed /opt/p2pmed
ENV PATH=/opt/p2pmed/bin:$PATH PYTHONDONTWRITEBYTECODE=1
USER p2pmed
# The node's home: keys (0600; encrypted at rest if P2PMED_PASSPHRASE_FILE or P2PMED_MASTER_KEY_FILE
# names a secret, see docs/operators.md), config.toml, genesis.json, the SQLite store and the RPC socket.
# Mount one node's home here and no other's.
VOLUME /data
ENV P2PMED_HOME=/data
EXPOSE 26656
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=3 \
  CMD ["p2pmed", "status", "--quiet"]
ENTRYPOINT ["p2pmed"]
CMD ["node"]
