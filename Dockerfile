# syntax=docker/dockerfile:1
# Worker image for LEO handoffs: `leo worker` by default; `leo db migrate` runs the schema job.
# Configured only through the environment (see leo/infra/settings.py): LEO_DATABASE_URL,
# TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, LEO_TASK_QUEUE, LEO_DATA_DIR.
#
#   docker build -t leo-orchestrator:0.1.0 .
#
# Pin the base by digest (python:3.11-slim@sha256:...) for fully reproducible builds.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/leo \
    PATH=/opt/leo/bin:$PATH \
    LEO_DATA_DIR=/var/lib/leo

RUN python -m venv /opt/leo \
    && useradd --system --uid 10001 --user-group --create-home --home-dir /home/leo leo \
    && mkdir -p /var/lib/leo \
    && chown leo:leo /var/lib/leo

WORKDIR /app

# Dependencies first, hash-checked against the lock, so code changes reuse this layer.
COPY requirements-runtime.lock pyproject.toml README.md ./
RUN pip install --require-hashes -r requirements-runtime.lock

# Then our packages (pyproject's [tool.hatch.build.targets.wheel] packages + worker.py).
COPY leo/ leo/
COPY workflows/ workflows/
COPY activities/ activities/
COPY db/ db/
COPY worker.py ./
COPY examples/ examples/
RUN pip install --no-deps .

USER leo
CMD ["leo", "worker"]
