# cometbox: `make test` runs every suite the machine's tools allow.
# With COMETBOX_TEST_STRICT=1 (as .ci/run sets) a suite that cannot run
# fails instead of skipping.

GO      ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
# The commit `cometbox -version` prints: HEAD, -dirty with uncommitted
# changes; read once, so every binary of one run carries the same.
ifndef COMMIT
COMMIT := $(shell git rev-parse HEAD 2>/dev/null)$(shell git rev-parse -q --verify HEAD >/dev/null 2>&1 && ! git diff --quiet HEAD -- 2>/dev/null && echo -dirty)
endif
LDFLAGS := -s -w -X main.version=$(VERSION) -X main.commit=$(COMMIT)
FUZZTIME ?= 10s

# Releases: the version is the one line of VERSION, which every manifest
# repeats (web/package.json, php-client/composer.json, the banner of
# web/cometbox.js; cmd/cometbox/version_test.go checks them all).
RELEASE_VERSION := $(shell cat VERSION)
RELEASE_LDFLAGS := -s -w -X main.version=$(RELEASE_VERSION) -X main.commit=$(COMMIT)
PLATFORMS       := linux/amd64 linux/arm64 darwin/arm64 darwin/amd64 windows/amd64
IMAGE_PLATFORMS ?= linux/amd64,linux/arm64
DIST            ?= dist

export COMETBOX_TEST_STRICT

.PHONY: test check test-go test-storm test-fuzz test-php test-php-ext bench-php test-web test-release cross release build image image-multiarch bench bench-go bench-profile run clean

test: check test-go test-storm test-fuzz test-php test-web test-release
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
	GO=$(GO) FUZZTIME=$(FUZZTIME) scripts/fuzz.sh FuzzParseJSON ./pkg/message
	GO=$(GO) FUZZTIME=$(FUZZTIME) scripts/fuzz.sh FuzzPublish ./pkg/httpapi
	GO=$(GO) FUZZTIME=$(FUZZTIME) scripts/fuzz.sh FuzzParseRePoll ./pkg/httpapi
	GO=$(GO) FUZZTIME=$(FUZZTIME) scripts/fuzz.sh FuzzConnections ./pkg/httpapi

# The PHP extension (php-client/ext/), as php-client/ext/test.sh builds it.
PHP_EXT_SO := $(CURDIR)/php-client/ext/modules/cometbox.so

## test-php: the PHP client's unit and acceptance suites (php-client/), twice:
## without the cometbox extension, then with it loaded (after test-php-ext built it)
test-php: build test-php-ext
	@if ! command -v phpunit >/dev/null 2>&1 || ! command -v php >/dev/null 2>&1; then \
	  if [ "$$COMETBOX_TEST_STRICT" = 1 ]; then echo "strict mode: php or phpunit missing"; exit 1; fi; \
	  echo "SKIP test-php: php/phpunit not installed (set COMETBOX_TEST_STRICT=1 to fail instead)"; exit 0; fi; \
	if [ ! -f php-client/phpunit.xml.dist ]; then echo "SKIP test-php: no php-client suite yet"; exit 0; fi; \
	cd php-client && export COMETBOX_BIN=$(CURDIR)/bin/cometbox COMETBOX_EXT=$(PHP_EXT_SO); \
	echo "test-php: without the cometbox extension"; phpunit || exit 1; \
	if [ ! -f $(PHP_EXT_SO) ]; then \
	  if [ "$$COMETBOX_TEST_STRICT" = 1 ]; then echo "strict mode: no $(PHP_EXT_SO)"; exit 1; fi; \
	  echo "SKIP test-php with the extension: it was not built (see test-php-ext)"; exit 0; fi; \
	echo "test-php: with the cometbox extension"; \
	COMETBOX_EXPECT_EXT=1 php -d extension=$(PHP_EXT_SO) "$$(command -v phpunit)"

## test-php-ext: the PHP extension (php-client/ext/): phpize build with -Werror, its .phpt
## suite, the same under valgrind, and its HTTP reader's property test under ASan/UBSan
test-php-ext:
	@php-client/ext/test.sh

## bench-php: the PHP class (curl) against the extension through a real php-fpm pool,
## opcache on (php-client/bench/fpm.php; the numbers in php-client/README.md); a minute
## or two; not part of make test. BENCH_PHP_FLAGS="--workers=2 --requests=10000"
bench-php: build
	@php-client/ext/test.sh build
	cd php-client && COMETBOX_BIN=$(CURDIR)/bin/cometbox php bench/fpm.php --ext=$(PHP_EXT_SO) $(BENCH_PHP_FLAGS)

## test-web: the browser client (web/): unit tests under node, then Chromium, Firefox ESR and WebKitGTK against real nodes
test-web: build
	@if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then \
	  if [ "$$COMETBOX_TEST_STRICT" = 1 ]; then echo "strict mode: node or npm missing"; exit 1; fi; \
	  echo "SKIP test-web: node/npm not installed (set COMETBOX_TEST_STRICT=1 to fail instead)"; exit 0; fi; \
	cd web && npm ci --no-audit --no-fund --loglevel=error && COMETBOX_BIN=$(CURDIR)/bin/cometbox npm test

## test-release: make release, as CI builds it (without zip: make cross, or a
## failure in strict mode)
test-release:
	@if command -v zip >/dev/null 2>&1; then $(MAKE) --no-print-directory release COMMIT=$(COMMIT); \
	elif [ "$$COMETBOX_TEST_STRICT" = 1 ]; then echo "strict mode: zip missing (make release)"; exit 1; \
	else echo "SKIP release archives: zip not installed (set COMETBOX_TEST_STRICT=1 to fail instead)"; \
	  $(MAKE) --no-print-directory cross COMMIT=$(COMMIT); fi

## cross: the release binaries, without cgo, for Linux, macOS and Windows,
## version and commit stamped: dist/cometbox_VERSION_OS_ARCH/cometbox[.exe]
cross:
	@rm -rf $(DIST)/cometbox_$(RELEASE_VERSION)_* $(DIST)/SHA256SUMS
	@set -e; for p in $(PLATFORMS); do \
	  os=$${p%/*}; arch=$${p#*/}; exe=cometbox; [ $$os != windows ] || exe=cometbox.exe; \
	  out=$(DIST)/cometbox_$(RELEASE_VERSION)_$${os}_$${arch}/$$exe; echo "build $$out"; \
	  CGO_ENABLED=0 GOOS=$$os GOARCH=$$arch $(GO) build -trimpath -ldflags '$(RELEASE_LDFLAGS)' -o $$out ./cmd/cometbox; \
	done

## release: make cross, then one archive per platform in dist/ (tar.gz; zip for
## Windows) holding the binary, LICENSE, README.md and CHANGELOG.md, and
## dist/SHA256SUMS. Byte for byte reproducible from the same commit and Go
## (file times are the commit's). Needs GNU tar, gzip, zip and sha256sum;
## publishes nothing.
release: cross
	@for t in tar gzip zip sha256sum; do \
	  command -v $$t >/dev/null 2>&1 || { echo "make release: $$t not installed"; exit 1; }; done
	@tag=$$(git describe --exact-match --tags HEAD 2>/dev/null || true); \
	  if [ -n "$$tag" ] && [ "$$tag" != "v$(RELEASE_VERSION)" ]; then \
	    echo "make release: HEAD is tagged $$tag but VERSION says $(RELEASE_VERSION)"; exit 1; fi
	@set -e; epoch=$$(git log -1 --format=%ct 2>/dev/null || echo 0); cd $(DIST); \
	  for dir in cometbox_$(RELEASE_VERSION)_*_*; do \
	    [ -d $$dir ] || continue; \
	    cp $(CURDIR)/LICENSE $(CURDIR)/README.md $(CURDIR)/CHANGELOG.md $$dir/; \
	    chmod 0644 $$dir/*; chmod 0755 $$dir/cometbox*; touch -d @$$epoch $$dir $$dir/*; \
	    case $$dir in \
	      *_windows_*) rm -f $$dir.zip; find $$dir | LC_ALL=C sort | TZ=UTC zip -qX -@ $$dir.zip;; \
	      *) tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@$$epoch -cf - $$dir | gzip -9n > $$dir.tar.gz;; \
	    esac; \
	  done; \
	  sha256sum cometbox_$(RELEASE_VERSION)_*.tar.gz cometbox_$(RELEASE_VERSION)_*.zip > SHA256SUMS; \
	  sha256sum --check --quiet SHA256SUMS; cat SHA256SUMS
	@set -e; host=$(DIST)/cometbox_$(RELEASE_VERSION)_$$($(GO) env GOHOSTOS)_$$($(GO) env GOHOSTARCH).tar.gz; \
	  want="cometbox $(RELEASE_VERSION)$(if $(COMMIT), (commit $(COMMIT)))"; \
	  if [ -f $$host ]; then tmp=$$(mktemp -d); tar -xzf $$host -C $$tmp; \
	    got=$$($$tmp/*/cometbox -version); rm -rf $$tmp; echo "$$got"; \
	    [ "$$got" = "$$want" ] || { echo "make release: -version says \"$$got\"; want \"$$want\""; exit 1; }; fi

## build: bin/cometbox, static, version stamped
build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/cometbox ./cmd/cometbox

## image: the container image, version stamped (needs a Docker engine; not part of make test)
image:
	docker build --build-arg VERSION=$(VERSION) -t cometbox:$(VERSION) .

## image-multiarch: the release image for IMAGE_PLATFORMS (linux/amd64,linux/arm64) with
## docker buildx; publishes nothing (add --push, or --output, to keep it); not part of make test
image-multiarch:
	docker buildx build --platform $(IMAGE_PLATFORMS) --build-arg VERSION=$(RELEASE_VERSION) \
	  -t cometbox:$(RELEASE_VERSION) .

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
	rm -rf bin $(DIST)
