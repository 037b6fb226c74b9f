# Consumer account audit — developer targets. `make help` lists them.
GO      ?= go
BIN     ?= bin
PKGS    := ./...
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT  ?= $(shell git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
IMAGE_REPO ?= ghcr.io/msaudit
CONTAINER ?= $(shell command -v docker >/dev/null 2>&1 && echo docker || echo podman)
# The images' org.opencontainers.image.* labels (deploy/Dockerfile).
IMAGE_SOURCE ?= https://github.com/msaudit/msaudit
# An SPDX expression; NOASSERTION until the repository carries a license.
IMAGE_LICENSES ?= NOASSERTION
# The commit's time (UTC, RFC 3339), so that two builds of one commit agree.
CREATED ?= $(shell TZ=UTC git log -1 --format=%cd --date=format-local:%Y-%m-%dT%H:%M:%SZ 2>/dev/null || date -u +%Y-%m-%dT%H:%M:%SZ)
IMAGE_ARGS = --build-arg VERSION=$(VERSION) --build-arg COMMIT=$(COMMIT) --build-arg CREATED=$(CREATED) \
	--build-arg SOURCE=$(IMAGE_SOURCE) --build-arg LICENSES=$(IMAGE_LICENSES)
# The chart's version: VERSION without its v when it is a release (vX.Y.Z…),
# else 0.0.0-dev-<VERSION> (a SemVer pre-release, e.g. for an untagged commit).
CHART_VERSION ?= $(shell echo '$(VERSION)' | sed -E 's/^v([0-9]+\.[0-9]+\.[0-9]+)/\1/; t; s/[^0-9A-Za-z-]/-/g; s/^/0.0.0-dev-/')
HELM ?= $(GO) run helm.sh/helm/v4/cmd/helm@v4.3.2
CYCLONEDX_GOMOD ?= github.com/CycloneDX/cyclonedx-gomod/cmd/cyclonedx-gomod@v1.10.0
export VERSION COMMIT

.DEFAULT_GOAL := help

.PHONY: help
help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  %-16s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: build
build: ## build enqueue, worker and tenantsim into ./bin (static, version-stamped: deploy/gobuild.sh)
	GO=$(GO) sh deploy/gobuild.sh $(BIN)

.PHONY: image
image: ## build the worker and enqueue images, OCI-labelled (docker, else podman; CONTAINER=, IMAGE_REPO=, VERSION=); attach the SBOMs: deploy/README.md
	$(CONTAINER) build -f deploy/Dockerfile --target worker  $(IMAGE_ARGS) -t $(IMAGE_REPO)/msaudit-worker:$(VERSION) .
	$(CONTAINER) build -f deploy/Dockerfile --target enqueue $(IMAGE_ARGS) -t $(IMAGE_REPO)/msaudit-enqueue:$(VERSION) .

.PHONY: sbom
sbom: ## a CycloneDX JSON SBOM of each binary into ./bin (BIN=): enqueue.cdx.json, worker.cdx.json, tenantsim.cdx.json
	@if [ "$$(git rev-parse --git-dir 2>/dev/null)" != "$$(git rev-parse --git-common-dir 2>/dev/null)" ]; then \
	  echo "sbom: cyclonedx-gomod reads the module's version with go-git, which cannot open a linked worktree: run it in a clone"; exit 1; fi
	mkdir -p $(BIN)
	for cmd in enqueue worker tenantsim; do \
	  CGO_ENABLED=0 $(GO) run $(CYCLONEDX_GOMOD) app -json -licenses -main cmd/$$cmd -output $(BIN)/$$cmd.cdx.json . || exit 1; \
	done

.PHONY: chart
chart: ## package the Helm chart into ./bin (BIN=), its version and appVersion from VERSION; lint it first
	mkdir -p $(BIN)
	$(HELM) lint --strict deploy/chart/msaudit
	$(HELM) package deploy/chart/msaudit --version $(CHART_VERSION) --app-version $(VERSION) -d $(BIN)

.PHONY: pin-version
pin-version: ## pin a release in the manifests: the chart's version and appVersion, every kustomize images: tag (VERSION=vX.Y.Z)
	@echo '$(VERSION)' | grep -Eq '^v[0-9]+\.[0-9]+\.[0-9]+$$' || { echo "pin-version: VERSION=vX.Y.Z, not $(VERSION)"; exit 1; }
	sed -i -E 's/^version: .*/version: $(patsubst v%,%,$(VERSION))/; s/^appVersion: .*/appVersion: "$(VERSION)"/' deploy/chart/msaudit/Chart.yaml
	sed -i -E 's/^( *newTag:) .*/\1 $(VERSION)/' deploy/base/kustomization.yaml deploy/examples/*/kustomization.yaml

.PHONY: image-push
image-push: image ## push both images
	$(CONTAINER) push $(IMAGE_REPO)/msaudit-worker:$(VERSION)
	$(CONTAINER) push $(IMAGE_REPO)/msaudit-enqueue:$(VERSION)

.PHONY: demo
demo: ## audit a simulated tenant end to end (no Azure, no Redis needed)
	$(GO) run ./cmd/enqueue demo --users 3000 --report-dir out/demo

# RACE_PKGS is every package but those that link the Graph SDK (a race
# build of it takes minutes and gigabytes; what they do concurrently lives
# in packages of its own, which are here) and internal/e2e, whose tests run
# the code under test in processes of its own.
RACE_PKGS = $(shell $(GO) list -f '{{.ImportPath}} {{join .Deps " "}}' $(PKGS) | grep -v -e msgraph-sdk-go -e /internal/e2e | cut -d' ' -f1)

.PHONY: test
test: ## vet, all tests (integration tests start their own redis-server), every package that can under -race, the deploy/ manifests
	$(GO) vet $(PKGS)
	$(GO) test -count=1 -parallel 4 -timeout 30m $(PKGS)
	$(GO) test -race -short -count=1 $(RACE_PKGS)
	cd deploy && $(GO) vet ./... && $(GO) test -count=1 -timeout 30m ./...

STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2

.PHONY: lint
lint: ## gofmt, go mod tidy and staticcheck, in both modules (the import rules are a test: internal/layering)
	@files=$$(gofmt -l cmd internal tasks deploy); if [ -n "$$files" ]; then echo "gofmt: not formatted:"; echo "$$files"; exit 1; fi
	$(GO) mod tidy -diff
	cd deploy && $(GO) mod tidy -diff
	$(GO) run $(STATICCHECK) $(PKGS)
	cd deploy && $(GO) run $(STATICCHECK) ./...

.PHONY: test-deploy
test-deploy: ## only the deploy/ manifests, Dockerfile and dashboard (no image build)
	cd deploy && $(GO) test -count=1 -short ./...

.PHONY: chaos
chaos: chaos-rollbacks
chaos: ## the full chaos suite: 20,000+ addresses through worker kills, Redis restarts, a rollback, lost tasks; another run through a minute of Redis out of memory and a minute of network cut
	MSAUDIT_CHAOS=full $(GO) test -count=1 -run '^TestChaos(Faults)?$$' -v -timeout 40m ./internal/e2e

.PHONY: chaos-rollbacks
chaos-rollbacks: ## ten runs, each with Redis rolled back a few seconds at a random moment: every run equal to the truth, the longest time without an answer after a restore
	MSAUDIT_CHAOS=full $(GO) test -count=1 -run '^TestRollbacks$$' -v -timeout 40m ./internal/e2e

.PHONY: bench
bench: ## micro-benchmarks: classification, expansion, recording a batch in Redis
	$(GO) test -run '^$$' -bench . -benchmem ./internal/addresses ./internal/realm ./internal/runstore ./internal/tenantsim

.PHONY: bench-throttle
bench-throttle: ## goodput vs a hidden realm capacity (C = 5/20/100, 1-8 workers, 1 or 2 tenants), a capacity drop, limiter accuracy; ~3 h, ~1 h with THROTTLE_PARALLEL=4 (THROTTLE_* env: internal/e2e/throttle_bench_test.go)
	$(GO) test -run '^$$' -bench '^BenchmarkThrottle$$' -benchtime 1x -timeout 300m ./internal/e2e

.PHONY: bench-model
bench-model: ## the limiter's own scripts against a modelled throttling service in virtual time (minutes of runs in seconds)
	$(GO) test -run '^$$' -bench '^BenchmarkLimiterModel' -benchtime 1x -timeout 30m ./internal/ratelimit

.PHONY: bench-robust
bench-robust: ## the limiter against every throttle shape of the family (internal/throttlemodel) in virtual time: tuning half, then held-out half, each with the best evenly paced rate beside; about 45 min on 2 cores (ROBUST_* env: internal/ratelimit/robust_test.go)
	$(GO) test -run '^$$' -bench '^BenchmarkLimiterRobust$$' -benchtime 1x -timeout 60m ./internal/ratelimit

.PHONY: bench-overhead
bench-overhead: ## one default worker: round trips and CPU per address (unthrottled realm), idle round trips/s, rate reached at realistic latency; ~3 min
	$(GO) test -run '^$$' -bench '^BenchmarkWorkerOverhead$$' -benchtime 1x ./internal/e2e

.PHONY: bench-fairness
bench-fairness: ## a 500-address run beside a 20,000-address run of another tenant vs alone
	$(GO) test -run '^$$' -bench '^BenchmarkFairness$$' -benchtime 1x ./internal/worker

.PHONY: bench-enqueue
bench-enqueue: ## time, CPU and peak RSS of submitting a 200,000-user simulated tenant (USERS=n); BASELINE=<checkout> runs its enqueue in turn, ROUNDS=n (3), medians
	MSAUDIT_BENCH_USERS=$(or $(USERS),200000) MSAUDIT_BENCH_BASELINE=$(BASELINE) MSAUDIT_BENCH_ROUNDS=$(ROUNDS) \
	  $(GO) test -run '^$$' -bench BenchmarkSubmitLargeTenant -benchtime 1x -timeout 60m ./cmd/enqueue

.PHONY: bench-report
bench-report: ## time and peak RSS of every report format, compare and the dead-letter export for a 200,000-user run (USERS=n to change)
	MSAUDIT_BENCH_USERS=$(or $(USERS),200000) $(GO) test -run '^$$' -bench BenchmarkReport200k -benchtime 1x -timeout 30m ./cmd/enqueue

.PHONY: bench-recurring
bench-recurring: ## realm requests and wall time of re-auditing a 20,000-user tenant in full vs with --since (2 % new users); ~6 min
	$(GO) test -run '^$$' -bench '^BenchmarkRecurringAudit$$' -benchtime 1x -timeout 60m ./internal/e2e

.PHONY: bench-footprint
bench-footprint: ## Redis memory per address of a 200,000-user run, queued and completed, by key family
	$(GO) test -run '^$$' -bench '^BenchmarkRedisFootprint$$' -benchtime 1x -timeout 30m ./internal/e2e

.PHONY: fmt
fmt: ## gofmt and go mod tidy
	gofmt -w cmd internal tasks deploy
	$(GO) mod tidy
	cd deploy && $(GO) mod tidy

.PHONY: deps-check
deps-check: ## the import rules of docs/design.md: layers, test support, Graph code only in the intake and never in the worker
	$(GO) test -count=1 ./internal/layering

.PHONY: clean
clean: ## remove build and demo output
	rm -rf $(BIN) out
