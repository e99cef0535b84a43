# aiopsd container image: slim Python, a virtualenv with aiopsd and Ansible, a non-root user.
# Mount your config at /etc/aiopsd/aiopsd.yaml and rules/playbooks under /etc/aiopsd/,
# and a volume at /var/lib/aiopsd for state (SQLite) unless state_url points at PostgreSQL.
#   docker build -t aiopsd .
#   docker run -v ./aiopsd.yaml:/etc/aiopsd/aiopsd.yaml:ro -v ./rules:/etc/aiopsd/rules:ro \
#              -v aiopsd-state:/var/lib/aiopsd -p 9797:9797 aiopsd

FROM python:3.12-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/aiopsd
WORKDIR /src
# Dependencies first, from pyproject.toml alone (with an empty package in place of the code),
# so editing the code does not re-download numpy, scikit-learn or Ansible.
COPY pyproject.toml README.md ./
RUN mkdir -p src/aiopsd && touch src/aiopsd/__init__.py \
    && /opt/aiopsd/bin/pip install . \
    && /opt/aiopsd/bin/pip uninstall -y aiopsd
COPY src ./src
RUN /opt/aiopsd/bin/pip install --no-deps . \
    && /opt/aiopsd/bin/aiopsd --version

FROM python:3.12-slim-bookworm
# ssh for playbooks that reach other hosts (Ansible's default connection).
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends openssh-client \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --user-group --home-dir /var/lib/aiopsd --create-home aiopsd
COPY --from=build /opt/aiopsd /opt/aiopsd
COPY deploy/container/aiopsd.yaml /etc/aiopsd/aiopsd.yaml
COPY rules /etc/aiopsd/rules
COPY playbooks /etc/aiopsd/playbooks
ENV PATH=/opt/aiopsd/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    HOME=/var/lib/aiopsd \
    ANSIBLE_HOME=/var/lib/aiopsd/ansible \
    ANSIBLE_LOCAL_TEMP=/var/lib/aiopsd/ansible/tmp
USER 10001:10001
WORKDIR /var/lib/aiopsd
VOLUME ["/var/lib/aiopsd"]
EXPOSE 9797
# SIGTERM drains: the webhook answers 503, running actions get actions.shutdown_grace.
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9797/-/healthy', timeout=4)"]
ENTRYPOINT ["aiopsd"]
CMD ["run", "--config", "/etc/aiopsd/aiopsd.yaml"]
