# berth in a container. FUSE mounts need /dev/fuse and CAP_SYS_ADMIN (see
# docker-compose.yml).
FROM rust:1-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends pkg-config libsqlite3-dev libpq-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --bin berth

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends fuse3 libsqlite3-0 libpq5 ca-certificates \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/berth /usr/local/bin/berth
ENV BERTH_LISTEN=0.0.0.0:8080 BERTH_DATA_DIR=/var/lib/berth
VOLUME /var/lib/berth
EXPOSE 8080
ENTRYPOINT ["berth"]
CMD ["serve"]
