# The pipeline's one image: every role (producer, worker, scheduler, CLI) is `ordertrack <command>`.
#
# BASE_IMAGE: a Debian bookworm image with or without Python 3.11. The default is the public
# python:3.11-slim-bookworm; where no registry is reachable, the local debootstrap base
# (`ordertrack stack docker up` imports it as ordertrack/debian:bookworm) gets Debian's Python 3.11.
# Builds with the classic builder (no BuildKit features), `--network host` where the engine has no bridge.
ARG BASE_IMAGE=python:3.11-slim-bookworm

FROM ${BASE_IMAGE} AS python
RUN if ! command -v python3 >/dev/null; then \
      apt-get update \
      && apt-get install -y --no-install-recommends python3 ca-certificates \
      && rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb /usr/share/doc/*; \
    fi

FROM python AS build
# Debian's Python keeps venv's pip bootstrap in a separate package; the slim image has it. Extra
# CAs (docker/build-ca/) are trusted by pip in this stage only, for an egress behind a TLS proxy.
COPY docker/build-ca/ /usr/local/share/ca-certificates/
RUN if ! python3 -c "import ensurepip" 2>/dev/null; then \
      apt-get update && apt-get install -y --no-install-recommends python3-venv; \
    fi \
    && update-ca-certificates >/dev/null
ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
# Dependencies first, pinned by constraints.txt: this layer is rebuilt only when they change.
COPY pyproject.toml constraints.txt ./
RUN python3 -m venv /opt/ordertrack \
    && python3 -c 'import tomllib; print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]))' > requirements.txt \
    && /opt/ordertrack/bin/pip install --no-cache-dir -q pip==26.3 setuptools==80.9.0 wheel==0.45.1 \
    && /opt/ordertrack/bin/pip install --no-cache-dir -q -c constraints.txt -r requirements.txt
# The sources in one layer (.dockerignore sends only the packages): vfs copies every layer whole.
COPY . ./
RUN /opt/ordertrack/bin/pip install --no-cache-dir -q --no-deps --no-build-isolation . \
    && /opt/ordertrack/bin/pip uninstall -q -y pip setuptools wheel \
    && cd /opt/ordertrack/lib/python3.11/site-packages && rm -rf pyarrow/include pyarrow/src pyarrow/tests

FROM python
# Metadata first, the large copy last: the classic builder on vfs copies the whole file system at
# every step, so the steps after the virtualenv's copy would each copy it again.
RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/ordertrack --create-home ordertrack \
    && mkdir -p /var/lib/ordertrack/warehouse && chown ordertrack:ordertrack /var/lib/ordertrack/warehouse
ENV PATH=/opt/ordertrack/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    ORDERTRACK_STATE_DIR=/var/lib/ordertrack/state \
    ORDERTRACK_METRICS_PORT=9400
WORKDIR /var/lib/ordertrack
EXPOSE 9400
# Per role: the producer, worker or scheduler serves its metrics and waits for no dependency
# (ordertrack/health.py, light enough to run every 15 s). One-shot commands end before the first check.
HEALTHCHECK --interval=15s --timeout=10s --start-period=60s --retries=3 CMD ["python", "-m", "ordertrack.health"]
ENTRYPOINT ["ordertrack"]
CMD ["--help"]
USER ordertrack
COPY --from=build /opt/ordertrack /opt/ordertrack
