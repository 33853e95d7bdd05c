# cometbox: `make test` runs every suite the machine's tools allow.
# With COMETBOX_TEST_STRICT=1 (as .ci/run sets) a suite that cannot run
# fails instead of skipping.

GO      ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)
FUZZTIME ?= 10s

export COMETBOX_TEST_STRICT

.PHONY: test check test-go test-storm test-fuzz test-php test-web cross build image bench bench-go bench-profile run clean

test: check test-go test-storm test-fuzz test-php test-web cross
	@echo "make test: all suites passed"

## check: formatting and vet
check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

## test-go: unit tests (miniredis) and the multi-node suite (real redis-server and node processes), with the race detector
test-go:
	$(GO) test -race -count=1 ./...

## test-storm: the 10,000-client reconnect storm, without the race detector (whose
## cost in the test process would starve the node on a 2-core machine)
test-storm:
	$(GO) test -count=1 -run '^TestFaultReconnectStorm$$' ./cmd/cometbox

## test-fuzz: a bounded run of each fuzz target over its committed corpus and new inputs
## (scripts/fuzz.sh: a real finding fails; the engine's own deadline race replays the corpus)
test-fuzz:
	GO=$(GO) FUZZTIME=$(FUZZTIME) scripts/fuzz.sh FuzzParseXML ./pkg/message
	GO=$(GO) FUZZTIME=$(FUZZTIME) scripts/fuzz.sh FuzzParseXMLFast ./pkg/message
	GO=$(GO) FUZZTIME=$(FUZZTIME) scripts/fuzz.sh FuzzParseCursor ./pkg/message
	GO=$(GO) FUZZTIME=$(FUZZTIME) scripts/fuzz.sh FuzzPublish ./pkg/httpapi
	GO=$(GO) FUZZTIME=$(FUZZTIME) scripts/fuzz.sh FuzzParseRePoll ./pkg/httpapi

## test-php: the PHP client's unit and acceptance suites (php-client/)
test-php: build
	@if ! command -v phpunit >/dev/null 2>&1 || ! command -v php >/dev/null 2>&1; then \
	  if [ "$$COMETBOX_TEST_STRICT" = 1 ]; then echo "strict mode: php or phpunit missing"; exit 1; fi; \
	  echo "SKIP test-php: php/phpunit not installed (set COMETBOX_TEST_STRICT=1 to fail instead)"; exit 0; fi; \
	if [ ! -f php-client/phpunit.xml.dist ]; then echo "SKIP test-php: no php-client suite yet"; exit 0; fi; \
	cd php-client && COMETBOX_BIN=$(CURDIR)/bin/cometbox phpunit

## test-web: the browser client (web/): unit tests under node, then Chromium and Firefox ESR against real nodes
test-web: build
	@if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then \
	  if [ "$$COMETBOX_TEST_STRICT" = 1 ]; then echo "strict mode: node or npm missing"; exit 1; fi; \
	  echo "SKIP test-web: node/npm not installed (set COMETBOX_TEST_STRICT=1 to fail instead)"; exit 0; fi; \
	cd web && npm ci --no-audit --no-fund --loglevel=error && COMETBOX_BIN=$(CURDIR)/bin/cometbox npm test

## cross: the node builds without cgo for Linux, macOS and Windows
cross:
	CGO_ENABLED=0 GOOS=linux   GOARCH=amd64 $(GO) build -o /dev/null ./cmd/cometbox
	CGO_ENABLED=0 GOOS=linux   GOARCH=arm64 $(GO) build -o /dev/null ./cmd/cometbox
	CGO_ENABLED=0 GOOS=darwin  GOARCH=arm64 $(GO) build -o /dev/null ./cmd/cometbox
	CGO_ENABLED=0 GOOS=darwin  GOARCH=amd64 $(GO) build -o /dev/null ./cmd/cometbox
	CGO_ENABLED=0 GOOS=windows GOARCH=amd64 $(GO) build -o /dev/null ./cmd/cometbox

## build: bin/cometbox, static, version stamped
build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/cometbox ./cmd/cometbox

## image: the container image, version stamped (needs a Docker engine; not part of make test)
image:
	docker build --build-arg VERSION=$(VERSION) -t cometbox:$(VERSION) .

## bench-go: the Go benchmarks of HEAD and of the working tree, compared by benchstat
bench-go:
	scripts/bench-go.sh

## bench-profile: a CPU profile of one node under the load tool at its max rate
## (scripts/bench-profile.sh [PHASES] for other phases and profiles)
bench-profile:
	scripts/bench-profile.sh

## bench: cometbox against Nchan side by side (docs/performance.md); about 25 minutes;
## installs nginx, libnginx-mod-nchan and redis-server when missing; not part of make test
bench:
	scripts/bench-compare.sh

## run: a single node with the embedded Redis
run:
	$(GO) run ./cmd/cometbox

clean:
	rm -rf bin
