# Build: docker build -t riposte .   Run: see docker-compose.yml
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin riposte

FROM debian:bookworm-slim
# Riposte runs as an unprivileged user, and so do its model hosts: without root a
# host cannot make its own network namespace (its lock-down report says so), but
# landlock (no filesystem, no network), seccomp and the rlimits hold.
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --user-group --home-dir /var/lib/riposte --shell /usr/sbin/nologin riposte \
    && mkdir -p /var/lib/riposte/data && chown -R riposte:riposte /var/lib/riposte
COPY --from=build /src/target/release/riposte /usr/local/bin/riposte
COPY challenges /opt/riposte/challenges
WORKDIR /var/lib/riposte
USER riposte:riposte
ENV RIPOSTE__CHALLENGES_DIR=/opt/riposte/challenges \
    RIPOSTE__DATA_DIR=/var/lib/riposte/data
EXPOSE 8080
CMD ["riposte", "serve", "--bind", "0.0.0.0:8080"]
