# One image holding every binary: /manager (operator), /conserver (worker),
# /api (HTTP API) and /kubectl-vcon. Static, on distroless nonroot.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY api/ api/
COPY cmd/ cmd/
COPY controllers/ controllers/
COPY internal/ internal/
ARG VERSION=dev
ARG GIT_COMMIT=unknown
ARG BUILD_TIME=unknown
ARG TARGETOS=linux
ARG TARGETARCH=amd64
RUN for bin in manager conserver api kubectl-vcon; do \
      CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH go build -trimpath \
        -ldflags "-s -w \
          -X github.com/vcon-operator/vcon-operator/internal/version.Version=${VERSION} \
          -X github.com/vcon-operator/vcon-operator/internal/version.GitCommit=${GIT_COMMIT} \
          -X github.com/vcon-operator/vcon-operator/internal/version.BuildTime=${BUILD_TIME}" \
        -o /out/$bin ./cmd/$bin || exit 1; \
    done

FROM gcr.io/distroless/static:nonroot
COPY --from=build /out/ /
USER 65532:65532
ENTRYPOINT ["/manager"]
