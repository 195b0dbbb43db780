# Strata service image: `docker build -t strata .` (docker-compose.yml builds it as well).
#
# Two stages: a Rust builder and a small Debian runtime. Works with BuildKit and with the
# classic builder (no RUN --mount), so the dependency cache is a plain image layer: the
# crates are compiled once against stub sources and reused until Cargo.toml, Cargo.lock or
# benches/ change.

ARG RUST_VERSION=1.95

# ---------------------------------------------------------------------------------------
FROM rust:${RUST_VERSION}-bookworm AS builder

# Nothing to install: rust:*-bookworm (buildpack-deps) already has gcc, g++, make, perl and
# pkg-config. That is all the native parts need: librdkafka is compiled by rdkafka-sys's
# configure + make with every optional feature off (no cmake, OpenSSL, zlib, zstd, curl or
# SASL, because rdkafka is used with default-features = false), aws-lc-sys uses its cc
# builder, and SQLite is bundled by libsqlite3-sys.
WORKDIR /src

# 1. Dependencies only. benches/ is copied because Cargo.toml declares [[bench]] targets
#    whose files must exist for the manifest to load (benches are not compiled here).
COPY Cargo.toml Cargo.lock ./
COPY benches ./benches
RUN mkdir src \
    && echo 'fn main() {}' > src/main.rs \
    && touch src/lib.rs \
    && cargo build --release --locked \
    && rm -rf src target/release/strata target/release/deps/strata-* \
        target/release/deps/libstrata-* target/release/.fingerprint/strata-*

# 2. The crate itself (everything .dockerignore lets through: src/, migrations/ embedded
#    by sqlx::migrate!, and whatever else the sources include at compile time).
COPY . .
RUN touch src/main.rs src/lib.rs \
    && cargo build --release --locked \
    && install -m 0755 target/release/strata /usr/local/bin/strata

# ---------------------------------------------------------------------------------------
FROM debian:bookworm-slim AS runtime

# ca-certificates: TLS to AWS S3 (rustls with the system's roots). Nothing else is
# needed at run time: the binary links only glibc, and the health check uses bash.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*

RUN groupadd --system --gid 10001 strata \
    && useradd --system --uid 10001 --gid strata --home-dir /var/lib/strata \
        --shell /usr/sbin/nologin strata \
    && install -d -o strata -g strata -m 0750 /var/lib/strata

COPY --from=builder /usr/local/bin/strata /usr/local/bin/strata
# The shipped forecast model: activated on the first start when the catalogue has none.
COPY models /usr/share/strata/models

# Listen on every interface inside the container (strata's own default is loopback only).
# DATA_DIR holds the embedded-mode state (SQLite, file:// tiers) when no DATABASE_URL or
# TIER_<NAME>_URL is given; mount a volume there to keep it.
ENV LISTEN_ADDR=0.0.0.0:8080 \
    DATA_DIR=/var/lib/strata \
    MODELS_DIR=/usr/share/strata/models
WORKDIR /var/lib/strata
USER 10001:10001
EXPOSE 8080 9000

# Liveness through GET /healthz (exempt from API_TOKEN), with bash's /dev/tcp instead of
# installing curl; the port is taken from LISTEN_ADDR.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["bash", "-c", "exec 3<>\"/dev/tcp/127.0.0.1/${LISTEN_ADDR##*:}\" && printf 'GET /healthz HTTP/1.1\\r\\nHost: localhost\\r\\nConnection: close\\r\\n\\r\\n' >&3 && read -r -t 4 _ status _ <&3 && [ \"$status\" = 200 ]"]

ENTRYPOINT ["strata"]
CMD ["serve"]
