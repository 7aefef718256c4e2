# syntax=docker/dockerfile:1
# Worker image for LEO handoffs: `leo worker` by default; `leo db migrate` runs the schema job.
# Configured only through the environment (see leo/infra/settings.py): LEO_DATABASE_URL,
# TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, LEO_TASK_QUEUE, LEO_DATA_DIR, LEO_AGENT_USER.
#
# The worker runs as root so that it can run each command agent as its own unprivileged uid:
# LEO_AGENT_USER=leo-agent, whose /etc/subuid range gives one uid per run (docs/sub-agents.md,
# "Agent users"). Agents then cannot read the worker's files, environment or certificates, nor
# each other's. The migration job runs as `leo` (docker-compose.yml). Run it with an init
# (`docker run --init`, compose `init: true`).
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
    LEO_DATA_DIR=/var/lib/leo \
    LEO_AGENT_USER=leo-agent

# leo-agent: no home, no shell, no password; a range of 65536 uids, one per agent run (under
# user-namespace remapping, choose a range inside the container's mapping).
RUN python -m venv /opt/leo \
    && useradd --system --uid 10001 --user-group --create-home --home-dir /home/leo leo \
    && useradd --uid 10002 --user-group --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin leo-agent \
    && { grep -q '^leo-agent:' /etc/subuid 2>/dev/null \
         || usermod --add-subuids 200000-265535 --add-subgids 200000-265535 leo-agent; } \
    && mkdir -p /var/lib/leo \
    && chown leo:leo /var/lib/leo \
    && chmod 0700 /var/lib/leo

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

CMD ["leo", "worker"]
