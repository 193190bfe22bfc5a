# p2pmed node image: `docker build -t p2pmed .`, then see compose.yaml for a 4-node network.
# Build stage: py-libp2p pulls in fastecdsa, which compiles against GMP.
FROM python:3.11-slim AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential libgmp-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml README.md ./
COPY p2pmed ./p2pmed
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends libgmp10 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --create-home --uid 10001 p2pmed \
 && mkdir /data /net \
 && chown p2pmed:p2pmed /data /net \
 && chmod 0700 /data
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
USER p2pmed
# The node's home: keys (0600; encrypted at rest if P2PMED_PASSPHRASE_FILE or P2PMED_MASTER_KEY_FILE
# names a secret, see docs/operators.md), config.toml, genesis.json, the SQLite store and the RPC socket.
VOLUME /data
ENV P2PMED_HOME=/data
EXPOSE 26656
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=3 \
  CMD ["p2pmed", "status", "--quiet"]
ENTRYPOINT ["p2pmed"]
CMD ["node"]
