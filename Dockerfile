# Builds the image the chart runs: the daemon (`cognate`) and the operator
# (`cognate-operator`) on a distroless, non-root base.
FROM rust:1.95-bookworm AS build
WORKDIR /src
RUN apt-get update -qq && apt-get install -y -qq cmake clang >/dev/null
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin cognate --bin cognate-operator \
 && mkdir /out && cp target/release/cognate target/release/cognate-operator /out/

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/cognate /out/cognate-operator /usr/local/bin/
USER 65532:65532
EXPOSE 9229 8080
ENTRYPOINT ["/usr/local/bin/cognate"]
CMD ["serve"]
