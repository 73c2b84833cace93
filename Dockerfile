# One image for every sart component: sartd (bgp, controller, agent, install-cni) with sartd-bgp, the sart CLI
# and the sart-cni plugin (copied onto the node by `sartd install-cni`, the agent's init
# container). The manifests call it `sart` (manifests/base/kustomization.yaml maps the name).
#
#   docker build -t ghcr.io/terassyi/sart:dev .       # or: make docker-image
#
# Without Docker, `make image` writes the same layout as an OCI archive from the same (dist)
# binaries (scripts/sart-image); `make lab` runs that layout built from release binaries.
#
# Built from the workspace with the same toolchain as CI; protoc comes vendored from crates.io.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
# The dist profile: release with whole-program LTO (Cargo.toml says why).
RUN cargo build --profile dist --locked -p sartd -p sart -p sartcni \
 && mkdir -p /out \
 && cp target/dist/sartd target/dist/sartd-bgp target/dist/sart target/dist/sart-cni /out/

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
