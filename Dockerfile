# A minimal image of tldw-ops: the static musl binary on distroless/static (CA certificates
# for HTTPS to the admin API and PostgreSQL, tzdata, a nonroot user; no shell, no package
# manager). The release workflow builds it for linux/amd64 and linux/arm64 from the binaries
# it has just built and checksummed, placed at dist/<arch>/tldw-ops; nothing is compiled here.
#
#   docker run --rm -v "$PWD:/work" -w /work ghcr.io/OWNER/tldw-ops:0.1.0 validate prod.yaml
FROM gcr.io/distroless/static-debian12:nonroot

ARG TARGETARCH
COPY --chmod=0755 dist/${TARGETARCH}/tldw-ops /usr/local/bin/tldw-ops

# 65532 is the nonroot user of the distroless image.
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/tldw-ops"]
CMD ["--help"]
