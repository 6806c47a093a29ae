# TaskFlow API server + operator image: `taskflow api`, `taskflow operator`, `taskflow migrate`.
#   docker build -t taskflow .
# BASE is any Debian-like image with python3 (3.11+), its venv module and useradd; the default
# is pinned by digest. hack/build-images.sh builds it on a base made from Debian packages.
ARG BASE=python:3.11-slim@sha256:9c900dea9e8fb7e16277c179b555cc72d29a352dbc33cff48ad5a0412fd5bfc7

FROM ${BASE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python3 -m venv /opt/taskflow
WORKDIR /src
COPY requirements/api.lock requirements/
# Every dependency at the version and hash of the lock file; then the two local packages from
# this tree, with nothing more resolved from an index.
RUN /opt/taskflow/bin/pip install --require-hashes --no-deps -r requirements/api.lock
COPY pyproject.toml README.md ./
COPY client/ client/
COPY taskflow/ taskflow/
COPY worker-image/taskflow_worker/ worker-image/taskflow_worker/
COPY operator/ operator/
RUN /opt/taskflow/bin/pip install --no-deps --no-build-isolation ./client '.[api,operator]' \
    && /opt/taskflow/bin/pip check

FROM ${BASE}
RUN useradd --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin taskflow
COPY --from=build /opt/taskflow /opt/taskflow
ENV PATH=/opt/taskflow/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
USER 10001:10001
EXPOSE 50051 8080 8081
ENTRYPOINT ["taskflow"]
CMD ["api"]
