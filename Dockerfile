# The service image: `audit serve` as an unprivileged user. See docs/deploy.md and docker-compose.yml.
FROM python:3.11-slim-bookworm

# pg_dump/pg_restore for `audit backup` and `audit restore` (Debian bookworm: PostgreSQL 15 client,
# so the compose file runs PostgreSQL 15: pg_dump must be at least the server's major version).
RUN apt-get update \
 && apt-get install -y --no-install-recommends postgresql-client \
 && rm -rf /var/lib/apt/lists/*

# The service's user owns only its state folders: the signing key (0700 folder, key created 0600)
# and the witness file, each mounted as its own volume.
RUN useradd --system --uid 10001 --home-dir /var/lib/audit --shell /usr/sbin/nologin audit \
 && mkdir -p /var/lib/audit/keys /var/lib/audit/witness \
 && chown -R audit:audit /var/lib/audit \
 && chmod 0700 /var/lib/audit/keys

COPY . /src
RUN pip install --no-cache-dir /src && rm -rf /src

USER audit
WORKDIR /var/lib/audit
ENV AUDIT_SIGNING_KEY_FILE=/var/lib/audit/keys/audit-signing.key \
    AUDIT_WITNESS_FILE=/var/lib/audit/witness/audit-witness.txt
EXPOSE 8000
CMD ["audit", "serve", "--host", "0.0.0.0", "--port", "8000", "--workers", "2", "--no-migrate"]
