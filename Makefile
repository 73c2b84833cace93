# sart: the two commands a user needs are `make lab` and `make test`.
SHELL := /bin/bash
CARGO ?= cargo

.PHONY: all build release test deps fmt-check clippy crd crd-check unit-test controlplane controlplane-smoke lab lab-down bench fuzz-smoke clean docker-check image docker-image kind-lb kind-cni clab-up clab-down kind-down real-cluster-check

all: build

build:
	$(CARGO) build --workspace

release:
	$(CARGO) build --workspace --release

deps:
	@scripts/install-deps.sh

fmt-check:
	$(CARGO) fmt --all -- --check

clippy:
	$(CARGO) clippy --workspace --all-targets -- -D warnings

## CRD manifests (manifests/crd/) from the Rust types in k8s/src/crd/.
crd:
	$(CARGO) run -q -p sart-k8s --bin crdgen

## Fails when the committed CRD manifests differ from the Rust types.
crd-check:
	$(CARGO) run -q -p sart-k8s --bin crdgen -- --check

# The interop tests run the sartd and sart binaries: build them before the tests.
unit-test:
	$(CARGO) build --workspace --bins
	$(CARGO) test --workspace

## The Kubernetes control plane for tests, built from Go modules (cached; cold build 10-25 min).
controlplane:
	@e2e/controlplane/build >/dev/null

## Control plane smoke test: CRDs, Deployments, scheduling, EndpointSlices, kube-proxy in a netns.
controlplane-smoke: controlplane
	e2e/controlplane/smoke-test

## Every test tier. Installs what it needs first.
##   crd-check: committed CRD manifests match the Rust types
##   unit-test: unit, property (proptest), golden-vector and control-plane fixture tests, and
##              interop tests of sartd against FRR, BIRD, GoBGP and ExaBGP in network namespaces
##   controlplane-smoke: the real control plane driven by kubectl
##   fuzz-smoke: every cargo-fuzz target for FUZZ_SECONDS (default 10)
test: deps fmt-check clippy crd-check real-cluster-check controlplane unit-test controlplane-smoke fuzz-smoke
	@echo "make test: all tiers passed"

## Criterion benchmarks of the codec (not a test; numbers go to docs/benchmarks.md).
bench:
	$(CARGO) bench -p sart-bgp --bench codec

## A short run of every fuzz target (needs the nightly toolchain and cargo-fuzz).
fuzz-smoke:
	scripts/fuzz-smoke.sh

## The whole system on one machine in network namespaces: a router (FRR), NODES nodes (default 3)
## running containerd and the kubelet, a real control plane, sart deployed from its image and
## manifests/dual, pods and a LoadBalancer Service, checked reachable from a client through BGP.
## Re-running on a running lab is safe. See README.md.
NODES ?= 3
lab: deps controlplane
	$(CARGO) build --release -p sartd -p sart -p sartcni
	e2e/lab/lab up --nodes $(NODES)

## Removes every process, namespace and file `make lab` made.
lab-down:
	e2e/lab/lab down

## sart's image (what manifests/ deploys) as an OCI archive, from the dist binaries (release with
## whole-program LTO, as the Dockerfile builds them), with the Dockerfile's layout: no Docker, no
## registry. Load it with `ctr -n k8s.io images import` or `kind load image-archive`. `make docker-image` builds the same with Docker.
IMAGE ?= ghcr.io/terassyi/sart:dev
IMAGE_ARCHIVE ?= target/images/sart.tar
image:
	$(CARGO) build --profile dist -p sartd -p sart -p sartcni
	scripts/sart-image target/dist $(IMAGE_ARCHIVE) $(IMAGE)
	@echo "image $(IMAGE): $(IMAGE_ARCHIVE)"

## Real clusters (need Docker, kind and containerlab, which this machine does not have):
##   make image kind-cni clab-up   # or kind-lb for sart as the LoadBalancer only
##   make clab-down kind-down
docker-check:
	@command -v docker >/dev/null || { echo "needs Docker (and kind, containerlab): see docs/usage.md" >&2; exit 2; }

docker-image: docker-check
	docker build -t $(IMAGE) .

kind-lb: docker-check image
	kind create cluster --config e2e/kind/cluster-lb.yaml
	kind load image-archive $(IMAGE_ARCHIVE) --name sart
	kubectl apply -k manifests/crd && kubectl apply -k manifests/lb

kind-cni: docker-check image
	kind create cluster --config e2e/kind/cluster-cni.yaml
	kind load image-archive $(IMAGE_ARCHIVE) --name sart
	kubectl apply -k manifests/crd && kubectl apply -k manifests/dual

clab-up: docker-check
	cd e2e/containerlab && containerlab deploy -t topology.yaml

clab-down: docker-check
	cd e2e/containerlab && containerlab destroy -t topology.yaml

kind-down: docker-check
	kind delete cluster --name sart

## What can be checked of the real-cluster files without Docker (part of make test).
real-cluster-check:
	e2e/kind/validate

clean:
	$(CARGO) clean
