# Dockerfile — one image with ktwin-hub, ktwin-agent, ktwinctl, ktwin-sim and the
# smart-city service plugins, for cloud-manifests/ and k3s-manifests/.
#
#   docker build -t ktwin-edge:dev .
#
# Build stage: the same Debian 12 packages as `make deps`; release build.
# Run stage: only the shared libraries the binaries link, and a non-root user.
FROM debian:bookworm AS build
RUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
      --no-install-recommends build-essential cmake pkg-config libyaml-dev libcjson-dev \
      libuv1-dev libcmocka-dev libsqlite3-dev libwebsockets-dev libprotobuf-c-dev \
      protobuf-c-compiler libpaho-mqtt-dev libhiredis-dev libcurl4-openssl-dev libssl-dev \
    && rm -rf /var/lib/apt/lists/*
COPY . /src
RUN cmake -S /src -B /build -DCMAKE_BUILD_TYPE=Release >/dev/null \
    && cmake --build /build -j"$(nproc)" --target ktwin-hub ktwin-agent ktwinctl ktwin-sim \
         kt_sc_smartcity ktwin-smartcity-service \
    && mkdir -p /out/bin /out/lib/ktwin/services \
    && cp /build/hub/ktwin-hub /build/agent/ktwin-agent /build/cli/ktwinctl /build/sim/ktwin-sim \
         /build/services/ktwin-smartcity-service /out/bin/ \
    && cp /build/services/*.so /out/lib/ktwin/services/

FROM debian:bookworm-slim
RUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
      --no-install-recommends libyaml-0-2 libcjson1 libuv1 libsqlite3-0 libwebsockets17 \
      libprotobuf-c1 libpaho-mqtt1.3 libhiredis0.14 libcurl4 libssl3 ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 65532 --home /var/lib/ktwin ktwin \
    && mkdir -p /var/lib/ktwin && chown ktwin /var/lib/ktwin
COPY --from=build /out/bin/ /usr/local/bin/
COPY --from=build /out/lib/ktwin/ /usr/local/lib/ktwin/
USER 65532
WORKDIR /var/lib/ktwin
