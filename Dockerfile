# syntax=docker/dockerfile:1
#
# NOT BUILT HERE: the machines this project is developed and tested on have
# no Docker engine, so no test builds or runs this image. Of what goes into
# it, the configuration file is the Debian package's
# (packaging/debian/switchyard.toml), which tests/e2e/package_deb.rs installs,
# checks and runs a node with.
#
# Switchyard in a container: built with `cargo build --release -p switchyard`
# in rust:1.95-bookworm, run in debian:bookworm-slim as the non-root user
# `switchyard`, with every key of /etc/switchyard/switchyard.toml commented
# out but `[store] persist` (the defaults: UDP and TCP on 0.0.0.0:5060; the
# registrations saved in the /var/lib/switchyard volume, so a restarted
# container keeps them). Mount your own config over it:
#
#   docker build -t switchyard .
#   docker run --rm switchyard check-config /etc/switchyard/switchyard.toml
#   docker run -d --name sip -p 5060:5060/udp -p 5060:5060/tcp \
#       -v "$PWD/switchyard.toml:/etc/switchyard/switchyard.toml:ro" switchyard
#   docker stop -t 45 sip    # SIGTERM drains for up to [lifecycle] drain_ms (30 s)
#
# Global flags go before the subcommand, e.g. JSON logs:
#   docker run ... switchyard --log-format json run --config /etc/switchyard/switchyard.toml

FROM rust:1.95-bookworm AS build
# aws-lc-sys (rustls' crypto) may build its C code with CMake.
RUN apt-get update \
 && apt-get install -y --no-install-recommends cmake \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# engine/build.rs compiles the bundled WebAssembly policies for wasm32-wasip2
# with the toolchain rust-toolchain.toml names.
COPY rust-toolchain.toml ./
RUN rustup target add wasm32-wasip2
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p switchyard \
 && install -D -m 0755 target/release/switchyard /out/switchyard \
 && strip --strip-debug /out/switchyard

FROM debian:bookworm-slim
# ca-certificates: the roots outbound TLS trusts by default ([tls] ca unset).
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --user-group --home-dir /var/lib/switchyard --no-create-home \
        --shell /usr/sbin/nologin --comment "Switchyard SIP proxy" switchyard \
 && install -d -o switchyard -g switchyard -m 0750 /var/lib/switchyard \
 && install -d -o root -g switchyard -m 0750 /etc/switchyard
COPY --from=build /out/switchyard /usr/bin/switchyard
COPY --chmod=0644 packaging/debian/switchyard.toml /etc/switchyard/switchyard.toml
USER switchyard
WORKDIR /var/lib/switchyard
VOLUME /var/lib/switchyard
# SIP over UDP and TCP, and SIP over TLS once [tls] and a tls: listener are set.
EXPOSE 5060/udp 5060/tcp 5061/tcp
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/bin/switchyard"]
CMD ["run","--config","/etc/switchyard/switchyard.toml"]
