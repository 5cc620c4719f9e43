# syntax=docker/dockerfile:1
# tollgate: a static binary on distroless, running as non-root.

FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/tollgate ./cmd/tollgate

# distroless/static carries CA certificates and /etc/passwd with the
# nonroot user (65532); there is no shell, and nothing needs to write to
# the root filesystem.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/tollgate /tollgate
USER 65532:65532
EXPOSE 8080 9090
ENTRYPOINT ["/tollgate", "serve"]
