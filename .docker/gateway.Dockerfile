# syntax=docker/dockerfile:1
# The gateway's one image: `gateway serve --no-worker`, `gateway worker` and `gateway migrate`
# are its commands (docker-compose.yml). Build from the repository root:
#   docker build -f .docker/gateway.Dockerfile -t billing-gateway:0.1.0 .

FROM python:3.11.15-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY gateway ./gateway
COPY lago ./lago
RUN python -m venv /opt/gateway && /opt/gateway/bin/pip install .

FROM python:3.11.15-slim-bookworm
RUN useradd --system --uid 10001 --create-home --home-dir /app gateway
COPY --from=build /opt/gateway /opt/gateway
# `gateway catalog apply` reads lago/catalog.yaml from the working directory.
COPY --chown=gateway:gateway lago /app/lago
ENV PATH=/opt/gateway/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
USER gateway
WORKDIR /app
EXPOSE 8080
CMD ["gateway", "serve", "--host", "0.0.0.0", "--port", "8080"]
