# syntax=docker/dockerfile:1
# One image for the control plane (`continuum server`), its migrations (`continuum db
# upgrade`) and the edge agent (`continuum agent`). Build: docker build -t continuum .

ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm

# --- builder: a virtual environment with the project and its dependencies (all wheels) ---
FROM ${PYTHON_IMAGE} AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN python -m venv /opt/continuum

WORKDIR /src
COPY pyproject.toml ./
COPY solver/ solver/
COPY models_registry/ models_registry/
COPY orchestrator/ orchestrator/
COPY api/ api/
COPY agents/ agents/
COPY cli/ cli/
COPY migrations/ migrations/
# --only-binary: every dependency comes as a wheel, so no compiler is needed here either.
RUN /opt/continuum/bin/pip install --only-binary=:all: . \
    && /opt/continuum/bin/continuum --help > /dev/null

# --- runtime: the venv only, no build tools, an unprivileged user ---
FROM ${PYTHON_IMAGE}

ARG UID=10001
LABEL org.opencontainers.image.title="continuum" \
      org.opencontainers.image.description="Energy- and carbon-aware placement of DNN inference across device, edge and cloud" \
      org.opencontainers.image.licenses="Apache-2.0"

ENV PATH=/opt/continuum/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/var/lib/continuum \
    CONTINUUM_DATA_DIR=/var/lib/continuum \
    CONTINUUM_HOST=0.0.0.0 \
    CONTINUUM_AGENT_STATE_DIR=/var/lib/continuum/agent

RUN groupadd --system --gid ${UID} continuum \
    && useradd --system --uid ${UID} --gid ${UID} --no-create-home \
       --home-dir /var/lib/continuum --shell /usr/sbin/nologin continuum \
    && mkdir -p /var/lib/continuum/agent \
    && chown -R ${UID}:${UID} /var/lib/continuum

COPY --from=builder /opt/continuum /opt/continuum

USER ${UID}:${UID}
WORKDIR /var/lib/continuum
VOLUME ["/var/lib/continuum"]

# 8080: the control plane's API (`continuum server`); 7070: an agent's data plane.
EXPOSE 8080 7070

# No HEALTHCHECK: the same image runs the server and the agent; Kubernetes probes the
# server on /healthz and /readyz (see helm/continuum).
ENTRYPOINT ["continuum"]
CMD ["server"]
