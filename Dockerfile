# One image for every sart component: sartd (bgp, controller, agent, install-cni) with sartd-bgp, the sart CLI
# and the sart-cni plugin (copied onto the node by `sartd install-cni`, the agent's init
# container). The manifests call it `sart` (manifests/base/kustomization.yaml maps the name).
#
#   docker build -t ghcr.io/terassyi/sart:dev .       # or: make docker-image
#
# Without Docker, `make image` writes the same layout as an OCI archive from the release binaries
# (scripts/sart-image); that is the image `make lab` runs.
#
# Built from the workspace with the same toolchain as CI; protoc comes vendored from crates.io.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p sartd -p sart -p sartcni \
 && mkdir -p /out \
 && cp target/release/sartd target/release/sartd-bgp target/release/sart target/release/sart-cni /out/

FROM debian:bookworm-slim AS sart
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates iproute2 nftables \
 && rm -rf /var/lib/apt/lists/*
# sartd-bgp is the speaker alone: `sartd bgp` executes it, so the speaker does not map the
# controller's and the agent's code.
COPY --from=build /out/sartd /out/sartd-bgp /out/sart /usr/local/bin/
# sart's own manifests run install-cni under this name (it reads their CNI_NETCONF).
RUN ln -s sartd /usr/local/bin/cni-installer
# install-cni copies the plugin from here to the node's CNI bin directory.
COPY --from=build /out/sart-cni /opt/sart/bin/sart-cni
ENTRYPOINT ["/usr/local/bin/sartd"]
