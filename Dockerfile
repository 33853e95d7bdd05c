# syntax=docker/dockerfile:1
#
# cometbox node image: a static Go binary (no cgo) on distroless/static,
# running as an unprivileged user, with the version stamped in:
#
#   docker build --build-arg VERSION=$(git describe --tags --always) -t cometbox .
#   docker run --rm cometbox -version
#   docker run --rm -p 8080:8080 cometbox     # single node, embedded Redis
#
# Multi-arch, as released (make image-multiarch; add --push to publish):
#
#   docker buildx build --platform linux/amd64,linux/arm64 \
#     --build-arg VERSION=$(cat VERSION) -t cometbox:$(cat VERSION) .
#
# Build arguments: GO_VERSION (the toolchain; go.mod's go line is the
# least), VERSION (what `cometbox -version` prints). The tests in
# deployments/ build the binary as the build stage does and check this
# file's structure; there is no container engine in CI.

ARG GO_VERSION=1.26.8

# The build runs on the builder's own platform and cross-compiles for each
# target platform, so no emulation is needed; the final stage is the
# distroless image of the target platform.
FROM --platform=$BUILDPLATFORM golang:${GO_VERSION} AS build
WORKDIR /src
ENV CGO_ENABLED=0 GOTOOLCHAIN=local
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
ARG VERSION=dev
# Set by BuildKit for each --platform. No defaults: a default would win
# over the platform (docker/buildx#510); empty, Go builds for its own.
ARG TARGETOS
ARG TARGETARCH
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    GOOS=$TARGETOS GOARCH=$TARGETARCH \
    go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/cometbox ./cmd/cometbox

# distroless/static: CA certificates (for rediss://), tzdata, /etc/passwd
# with the nonroot user (65532), and nothing else.
FROM gcr.io/distroless/static-debian12:nonroot
ARG VERSION=dev
LABEL org.opencontainers.image.title="cometbox" \
      org.opencontainers.image.description="comet (server push) tier: long-polls and event streams, messages in Redis" \
      org.opencontainers.image.source="https://github.com/cometbox/cometbox" \
      org.opencontainers.image.version="${VERSION}"
COPY --from=build /out/cometbox /usr/local/bin/cometbox
USER 65532:65532
# 8080: browsers and back ends; 8081: the operator's /readyz and /metrics
# when COMETBOX_ADMIN_LISTEN=:8081, as the shipped deployments set it.
EXPOSE 8080 8081
# Liveness, not readiness: /healthz answers while the process serves.
# Readiness (/readyz: Redis answers, not draining) is for the load
# balancer, which checks it itself; an orchestrator that restarts
# unhealthy containers must not restart every node during a Redis outage.
# The image has no shell and no curl: `cometbox healthcheck` is the
# client. It checks the address COMETBOX_LISTEN gives (default :8080), as
# the node itself reads it.
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
    CMD ["/usr/local/bin/cometbox", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/cometbox"]
