# promgate's container image: built from this repository, run as an unprivileged user.
#   docker build -t promgate .
#   docker run -v $PWD/promgate.toml:/etc/promgate/promgate.toml:ro -p 9090:9090 promgate
# The configuration is not part of the image: mount it (its server.listen must not be a
# loopback address, or nothing outside the container reaches it).

FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin promgate \
    && install -m 0755 target/release/promgate /usr/local/bin/promgate

FROM debian:bookworm-slim
# ca-certificates: HTTPS backends and S3 endpoints. The shell stays, so the image also runs
# `promgate upload` in a loop (see compose/s3-blocks).
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 promgate \
    && useradd --system --uid 10001 --gid promgate --no-create-home --shell /usr/sbin/nologin promgate \
    && mkdir -p /etc/promgate
COPY --from=build /usr/local/bin/promgate /usr/local/bin/promgate
USER promgate
EXPOSE 9090
ENTRYPOINT ["/usr/local/bin/promgate"]
CMD ["run", "--config", "/etc/promgate/promgate.toml"]
