# awxguard daemon image: multi-stage, the binary only, non-root. Not built by CI (no container
# engine runs on these machines); see the README's "Daemon" section for how to build and run it.
#
#   docker build -t awxguard .
#   docker run -d --name awxguard \
#     -v /etc/awxguard:/etc/awxguard:ro -v awxguard-data:/var/lib/awxguard \
#     --env-file /etc/awxguard/environment awxguard
#   docker kill -s HUP awxguard      # reload the config
#   docker stop -t 45 awxguard       # SIGTERM: running jobs drain

FROM rust:1-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends libsqlite3-dev pkg-config \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src src
COPY rules rules
COPY examples examples
RUN cargo build --release --locked --bin awxguard \
 && strip target/release/awxguard

FROM debian:bookworm-slim
# git for repository scans, CA roots for git over HTTPS, SQLite for the database.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates git libsqlite3-0 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --user-group --home-dir /var/lib/awxguard --create-home \
      --shell /usr/sbin/nologin awxguard
COPY --from=build /src/target/release/awxguard /usr/local/bin/awxguard
USER 10001:10001
ENV AWXGUARD_DB=/var/lib/awxguard/awxguard.db HOME=/var/lib/awxguard
VOLUME ["/var/lib/awxguard"]
# /healthz listens on the container's loopback ([daemon] listen); the check runs inside it.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s \
  CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/9477 && printf 'GET /healthz HTTP/1.0\\r\\n\\r\\n' >&3 && head -1 <&3 | grep -q ' 200 '"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/awxguard"]
CMD ["daemon", "--config", "/etc/awxguard/awxguard.toml"]
