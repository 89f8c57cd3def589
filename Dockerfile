# Fulcrum on a slim Python base, as an unprivileged user.
#
#   docker build -t fulcrum .          (or: make docker-build)
#   docker run --rm -p 8080:8080 -p 127.0.0.1:9090:9090 \
#       -e FULCRUM_ADMIN__TOKEN="$(openssl rand -hex 16)" \
#       -v "$PWD/my-config.yaml:/etc/fulcrum/config.yaml:ro" fulcrum
#
# The configuration is mounted at /etc/fulcrum/config.yaml (FULCRUM_CONFIG names the file).
# The proxy listens on 0.0.0.0:8080 and the admin listener (health, readiness, metrics, API)
# on 0.0.0.0:9090: these environment variables override the file's listen / admin.listen.
# A non-loopback admin listener needs a token, so FULCRUM_ADMIN__TOKEN must be set: Fulcrum
# refuses to start without it (exit 2, naming admin.token). Give the token by that variable,
# not in the file: the HEALTHCHECK reads it from the environment.
# The image also holds the example backend (/app/examples/backend/server.py), which
# docker-compose.yml runs as three more containers.

ARG PYTHON_VERSION=3.11

# -- build: Fulcrum and its dependencies installed into a virtual environment -------------------
FROM python:${PYTHON_VERSION}-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
# pyproject.toml names README.md as the package's readme: the build needs it.
# gcc (and the image's Python headers) compile the core; without them the pure-Python core installs.
RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev && rm -rf /var/lib/apt/lists/*
COPY pyproject.toml setup.py README.md ./
COPY src ./src
RUN python -m venv /opt/fulcrum && /opt/fulcrum/bin/pip install . \
    && /opt/fulcrum/bin/fulcrum --version | grep -qx "core: compiled"

# -- runtime: that environment alone, no source tree, no build leftovers --------------------------
# (Copying a venv between stages of the same base image needs no BuildKit feature.)
FROM python:${PYTHON_VERSION}-slim
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PATH=/opt/fulcrum/bin:$PATH
COPY --from=build /opt/fulcrum /opt/fulcrum
RUN useradd --system --user-group --uid 10001 --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin fulcrum \
    && mkdir -p /etc/fulcrum
WORKDIR /app
COPY examples/backend/server.py examples/backend/server.py

ENV FULCRUM_CONFIG=/etc/fulcrum/config.yaml \
    FULCRUM_LISTEN=0.0.0.0:8080 \
    FULCRUM_ADMIN__LISTEN=0.0.0.0:9090
EXPOSE 8080 9090
USER fulcrum:fulcrum

# Liveness from the admin listener. No curl in a slim image: Python's urllib ("python" is the
# venv's, first on PATH). The port is FULCRUM_ADMIN__LISTEN's; the token is sent because a
# non-loopback admin listener wants it for every request, /health included. Any failure
# (refused, 401/403, 5xx, timeout) exits 1.
HEALTHCHECK --interval=10s --timeout=5s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as u; port = os.environ.get('FULCRUM_ADMIN__LISTEN', '0.0.0.0:9090').rpartition(':')[2]; token = os.environ.get('FULCRUM_ADMIN__TOKEN'); u.build_opener(u.ProxyHandler({})).open(u.Request(f'http://127.0.0.1:{port}/health', headers={'Authorization': f'Bearer {token}'} if token else {}), timeout=4)"]

# SIGTERM (docker stop) makes Fulcrum stop accepting and let requests in flight finish for up
# to 30 s before it exits; docker waits only 10 s by default before SIGKILL, so give it
# longer: docker run --stop-timeout 35, or stop_grace_period in compose (docker-compose.yml).
STOPSIGNAL SIGTERM
ENTRYPOINT ["fulcrum"]
CMD ["run"]
