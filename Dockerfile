# syntax=docker/dockerfile:1
# The gateway node image: docker build -t gateway .
# Used three times by docker-compose.cluster.yml (gw-1..3); config at /etc/gateway/gateway.toml.

# ---- build ---------------------------------------------------------------------------------
FROM rust:1-bookworm AS builder
WORKDIR /src
COPY . .
# Cache mounts keep the crate registry and target/ between builds (BuildKit).
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p gateway --bin gateway \
    && install -D -m 0755 target/release/gateway /out/gateway

# ---- runtime -------------------------------------------------------------------------------
FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 gateway \
    && useradd --system --uid 10001 --gid gateway --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin gateway
COPY --from=builder /out/gateway /usr/local/bin/gateway
COPY deploy/gateway.toml /etc/gateway/gateway.toml
USER 10001:10001
EXPOSE 8080 9901
# /ready on the main listener: 200 once the registry is loaded and Redis is reachable.
# bash's /dev/tcp keeps curl out of the image; HEALTH_PORT when node.listen is not :8080.
HEALTHCHECK --interval=5s --timeout=3s --start-period=10s --retries=3 \
    CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/${HEALTH_PORT:-8080} && printf 'GET /ready HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n' >&3 && head -n 1 <&3 | grep -q ' 200 '"]
# SIGTERM: stop accepting, drain in-flight requests (node.shutdown_grace), leave the cluster.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/gateway"]
CMD ["--config", "/etc/gateway/gateway.toml"]
