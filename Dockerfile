# runestone-server: the control plane (API, dashboard, worker) in one image.
#   docker build -t runestone-server .
#   docker compose up -d            (server, PostgreSQL and a worker: compose.yaml)
# Runs as an unprivileged user; the data directory (SQLite default, server key) is /data.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    RUNESTONE_SERVER_HOME=/data

WORKDIR /app
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install --no-cache-dir '.[server]' \
    && useradd --system --uid 10001 --home-dir /data --shell /usr/sbin/nologin runestone \
    && mkdir -p /data && chown runestone /data
COPY docker/entrypoint.sh /usr/local/bin/runestone-entrypoint

USER runestone
VOLUME /data
EXPOSE 8800
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s \
    CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8800/readyz', timeout=4).status != 200)"
ENTRYPOINT ["/usr/local/bin/runestone-entrypoint"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8800"]
