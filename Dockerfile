# syntax=docker/dockerfile:1
FROM python:3.11-slim AS base

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Dependencies first, so code changes do not reinstall them.
COPY pyproject.toml README.md ./
RUN python -c "import tomllib; p = tomllib.load(open('pyproject.toml','rb'))['project']; print('\n'.join(p['dependencies'] + p['optional-dependencies']['postgres']))" \
        > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt

# The hot-path modules compiled with mypyc (scripts/build_native.py). The compiler and mypy stay in this
# stage; the image gets the package with its extension modules and the manifest that vouches for them.
FROM base AS native
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*
RUN python -c "import tomllib; d = tomllib.load(open('pyproject.toml','rb'))['project']['optional-dependencies']['dev']; print('\n'.join(r for r in d if r.split('>')[0].split('[')[0] in ('mypy', 'setuptools', 'types-PyYAML', 'types-requests')))" \
        > /tmp/build-requirements.txt \
    && pip install -r /tmp/build-requirements.txt
COPY cds_service ./cds_service
COPY scripts/build_native.py ./scripts/build_native.py
RUN python scripts/build_native.py --force \
    && python -c "import cds_service.native as n; assert n.status == 'compiled', n.status"

FROM base
COPY --from=native /app/cds_service ./cds_service
COPY cards ./cards
COPY fhir_fixtures ./fhir_fixtures
RUN pip install --no-deps . \
    && useradd --system --uid 10001 --home-dir /app cds \
    && mkdir -p /data && chown cds /data

USER cds
ENV CDS_HOST=0.0.0.0 \
    CDS_PORT=8080 \
    CDS_WORKERS=2 \
    CDS_CARDS_DIR=/app/cards \
    CDS_DATA_DIR=/data \
    PROMETHEUS_MULTIPROC_DIR=/tmp/cds-metrics
VOLUME ["/data"]
EXPOSE 8080

HEALTHCHECK --interval=30s --timeout=3s --start-period=10s --retries=3 \
    CMD python -c "import os, urllib.request; urllib.request.urlopen(f'http://127.0.0.1:{os.environ[\"CDS_PORT\"]}/healthz', timeout=2)"

CMD ["python", "-m", "cds_service", "serve"]
