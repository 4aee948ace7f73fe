# The `app` counter service: built with the project's toolchain, shipped alone
# on a slim Debian runtime as a non-root user. Templates are embedded into the
# binary at build time, so the runtime image holds only the executable.

# ---- build ------------------------------------------------------------------
FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY . .
# Both Dockerfiles run the SAME cargo command against the SAME cache ids, so
# whichever build goes second (compose builds them in parallel; `sharing=locked`
# makes one wait for the other) finds everything already compiled instead of
# repeating a slow fat-LTO release build. The binary is copied out of the cache
# mount because mounts are not part of the image.
RUN --mount=type=cache,id=visit-counter-cargo-registry,target=/usr/local/cargo/registry \
    --mount=type=cache,id=visit-counter-target,target=/src/target,sharing=locked \
    cargo build --release --locked -p app -p balancer \
 && install -D -m 0755 target/release/app /out/app

# ---- runtime ----------------------------------------------------------------
FROM debian:bookworm-slim
# A fixed numeric id, so a read-only root file system and volumes behave the
# same on every host.
RUN useradd --system --uid 10001 --user-group --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin app
COPY --from=build /out/app /usr/local/bin/app
USER 10001:10001
# `docker compose build --build-arg APP_VERSION=2.0.1` (or `build: args:`): shown in /health, the
# X-App-Version header and the pages' footer; empty means the crate version.
ARG APP_VERSION=
ENV APP_LISTEN=0.0.0.0:5000 APP_VERSION=${APP_VERSION}
EXPOSE 5000
# No curl in the image: the binary checks its own /health (200 only while
# Redis answers).
HEALTHCHECK --interval=3s --timeout=3s --start-period=10s --retries=3 \
    CMD ["/usr/local/bin/app", "healthcheck"]
# Graceful drain on SIGTERM is the app's default; compose's stop_grace_period
# gives it longer than its 10 s drain.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/app"]
