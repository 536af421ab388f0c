# Build: docker build -t riposte .   Run: see docker-compose.yml
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin riposte

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/* \
    && useradd --system --home /var/lib/riposte riposte
COPY --from=build /src/target/release/riposte /usr/local/bin/riposte
COPY challenges /opt/riposte/challenges
WORKDIR /var/lib/riposte
ENV RIPOSTE__CHALLENGES_DIR=/opt/riposte/challenges \
    RIPOSTE__DATA_DIR=/var/lib/riposte/data
EXPOSE 8080
CMD ["riposte", "serve", "--bind", "0.0.0.0:8080"]
