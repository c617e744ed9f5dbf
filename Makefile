# vcon-operator
#   make dev    run the whole system on a real single-node Kubernetes here (root; no Docker needed)
#   make test   run every test (what CI runs)
#   make bench  run the benchmarks and refresh docs/benchmarks.md
#   make image  build the image without Docker (OCI layout + docker archive in bin/image/)

SHELL := /usr/bin/env bash -o pipefail
.SHELLFLAGS := -ec
.DEFAULT_GOAL := build

BIN        := $(CURDIR)/bin
VERSION    ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
GIT_COMMIT ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
BUILD_TIME ?= $(shell date -u +%Y-%m-%dT%H:%M:%SZ)
IMG        ?= ghcr.io/vcon-operator/vcon-operator:$(VERSION)
LDFLAGS    := -s -w \
	-X github.com/vcon-operator/vcon-operator/internal/version.Version=$(VERSION) \
	-X github.com/vcon-operator/vcon-operator/internal/version.GitCommit=$(GIT_COMMIT) \
	-X github.com/vcon-operator/vcon-operator/internal/version.BuildTime=$(BUILD_TIME)
BINARIES   := manager conserver api kubectl-vcon
# Tests find envtest binaries, helm and promtool here.
export KUBEBUILDER_ASSETS := $(BIN)
export PATH := $(BIN):$(PATH)
GO_TEST_FLAGS ?= -p 2 -timeout 25m

##@ Build
.PHONY: build
build: $(addprefix $(BIN)/,$(BINARIES)) ## Build all four binaries into bin/.

$(BIN)/%: FORCE
	CGO_ENABLED=0 go build -trimpath -ldflags '$(LDFLAGS)' -o $@ ./cmd/$*

.PHONY: FORCE
FORCE:

.PHONY: fmt vet
fmt: ## gofmt the tree.
	gofmt -w $$(git ls-files '*.go')
vet: ## go vet, and fail on unformatted files.
	go vet ./...
	@bad=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$bad" ]; then echo "gofmt needed: $$bad"; exit 1; fi

##@ Generated code
.PHONY: manifests generate
manifests: tools-gen ## Regenerate CRDs and RBAC from the markers (and the chart's copies of both).
	$(BIN)/controller-gen rbac:roleName=vcon-operator crd paths="./api/...;./controllers/..." \
		output:crd:artifacts:config=config/crd/bases output:rbac:artifacts:config=config/rbac
	@# The chart's CRDs are templates that upgrade with it (hack/chartcrds).
	@if [ -d charts/vcon-operator ]; then go run ./hack/chartcrds config/crd/bases charts/vcon-operator/templates/crds charts/vcon-operator/Chart.yaml config/samples; fi
	@# The chart grants exactly the rules of the markers (hack/chartrbac).
	@if [ -d charts/vcon-operator ]; then go run ./hack/chartrbac config/rbac/role.yaml charts/vcon-operator/templates/_rbac-rules.tpl; fi
	@# The chart's README: values.yaml's comments through README.md.gotmpl.
	@if [ -d charts/vcon-operator ]; then $(BIN)/helm-docs --chart-search-root charts --skip-version-footer --sort-values-order file --log-level warning; fi
generate: tools-gen ## Regenerate deepcopy code.
	$(BIN)/controller-gen object:headerFile="hack/boilerplate.go.txt" paths="./api/..."

##@ Tools (built once per machine into ~/.cache/vcon-operator, linked into bin/)
.PHONY: tools tools-gen tools-test deps
tools-gen:
	@hack/tools.sh controller-gen helm-docs
TEST_TOOLS ?= envtest helm promtool s3server ferretdb jose-node
tools-test: ## envtest binaries, helm, promtool, the S3 and MongoDB test servers and node's jose.
	@hack/tools.sh $(TEST_TOOLS)
deps: ## Debian packages the tests run (redis-server, PostgreSQL, sshd); installs them when missing.
	@hack/deps.sh
tools: tools-gen deps tools-test
.PHONY: tools-cluster
tools-cluster: ## The real single-node cluster's binaries (etcd, kube-*, kubelet, CoreDNS), built once per machine.
	@hack/tools.sh cluster

##@ Test
.PHONY: test bench e2e
test: tools manifests generate vet ## Run every test.
	@if [ "$${CI:-}" = true ]; then git diff --exit-code --stat -- api config charts || { echo "generated files are stale: run make manifests generate and commit them"; exit 1; }; fi
	go test $(GO_TEST_FLAGS) ./...
	@$(MAKE) --no-print-directory e2e

e2e: ## End-to-end test on real pods: make dev's tour, then 5,000 vCons under faults (root, Linux).
	@hack/tools.sh cluster helm prometheus prometheus-operator
	@hack/deps.sh cluster
	@$(MAKE) --no-print-directory build BINARIES=kubectl-vcon
	@$(MAKE) --no-print-directory image IMAGE_PLATFORMS=linux/$$(go env GOARCH)
	@# The cluster's own test first (bring-up, hardened pod, Service, a
	@# teardown that leaves nothing), under the machine's one-cluster lock.
	flock /tmp/vcon-cluster.lock go test -tags cluster -count=1 -timeout 10m -v ./test/cluster/
	go test -tags e2e -count=1 -timeout 25m -v ./test/e2e/

.PHONY: krew-release
krew-release: ## Release step of the plugin: dist/kubectl-vcon_<os>_<arch>.tar.gz and dist/vcon.yaml for krew (VERSION=vX.Y.Z).
	@test -n "$(VERSION)" || { echo "give VERSION=vX.Y.Z"; exit 1; }
	hack/krew/release.sh build $(VERSION) dist
	hack/krew/release.sh render $(VERSION) dist

bench: tools ## Run the benchmarks and write docs/benchmarks.md.
	hack/bench.sh

##@ Real cluster (root, Linux; see docs/cluster.md)
.PHONY: cluster cluster-down cluster-test
cluster: tools-cluster ## Bring up a real single-node Kubernetes (node in its own netns) in .cluster/.
	@hack/cluster/up.sh
cluster-down: ## Tear the real cluster down and leave nothing behind.
	@hack/cluster/down.sh
cluster-test: tools-cluster image ## Bring-up, a hardened pod, a Service from the host, teardown (go test -tags cluster).
	flock /tmp/vcon-cluster.lock go test -tags cluster -count=1 -timeout 10m -v ./test/cluster/

##@ Image (no Docker engine needed)
# The binaries' BUILD_TIME, the files' mtimes and the created label are the
# commit time (or SOURCE_DATE_EPOCH), so one commit always gives one digest.
IMAGE_EPOCH ?= $(or $(SOURCE_DATE_EPOCH),$(shell git log -1 --format=%ct 2>/dev/null),0)
IMAGE_REPO  ?= $(patsubst %:$(VERSION),%,$(IMG))
IMAGE_REVISION ?= $(shell git rev-parse HEAD 2>/dev/null)
# make dev and the e2e build only this machine's platform: IMAGE_PLATFORMS=linux/amd64.
IMAGE_PLATFORMS ?= linux/amd64,linux/arm64
.PHONY: image image-tarballs
image: ## Build the image (linux/amd64+arm64) into bin/image/: an OCI layout tar and a docker archive for ctr import.
	@$(MAKE) --no-print-directory image-tarballs BUILD_TIME=$$(date -u -d @$(IMAGE_EPOCH) +%Y-%m-%dT%H:%M:%SZ)
image-tarballs:
	SOURCE_DATE_EPOCH=$(IMAGE_EPOCH) go run ./hack/image -out $(BIN)/image -version $(VERSION) \
		-revision $(IMAGE_REVISION) -repository $(IMAGE_REPO) -platforms $(IMAGE_PLATFORMS) -ldflags '$(LDFLAGS)'

##@ Run
.PHONY: dev deploy kind
dev: ## Run the whole system on a real single-node cluster here (root); Ctrl-C tears it down.
	@hack/dev.sh

deploy: ## Install charts/vcon-operator into the current kubectl context (asks first; YES=1 does not).
	@hack/dev/deploy.sh

kind: ## Create a kind cluster (needs Docker) and deploy there.
	@hack/dev/kind.sh

.PHONY: docker-build
docker-build: ## Build the image (needs a Docker engine).
	docker build --build-arg VERSION=$(VERSION) --build-arg GIT_COMMIT=$(GIT_COMMIT) --build-arg BUILD_TIME=$(BUILD_TIME) -t $(IMG) .

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*##"} /^[a-zA-Z_%-]+:.*?##/ { printf "  %-14s %s\n", $$1, $$2 } /^##@/ { printf "\n%s\n", substr($$0, 5) }' $(MAKEFILE_LIST)
