#!/usr/bin/env bash
# Coverage-guided fuzzing of the parsers that read untrusted or stored bytes (request
# decoding and validation, ListUsers filters, SigV4, stored events, JWTs): builds the
# libFuzzer targets in fuzz/ with cargo-fuzz on the stable toolchain, runs each one for
# a bounded time from the committed seeds, and fails on the first crash, leak, timeout
# or out-of-memory. The long, unattended run is described in docs/fuzzing.md.
#
#   FUZZ_SECONDS=20        seconds per target (default 20)
#   FUZZ_TARGETS="a b"     which targets (default: all of fuzz/fuzz_targets)
#   FUZZ_SANITIZER=none    none (default) or address (ASan; slower, stable only via
#                          RUSTC_BOOTSTRAP like the rest)
#   FUZZ_OPT_LEVEL=1       opt-level of the instrumented build: 1 builds in about half
#                          the time of 3 on two cores; use 3 for long runs
#   FUZZ_CODEGEN_UNITS=16  codegen units (cargo-fuzz's default is 1: faster code, but
#                          the big crates then compile on one core)
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${FUZZ_SECONDS:-20}"
sanitizer="${FUZZ_SANITIZER:-none}"
if [ -n "${FUZZ_TARGETS:-}" ]; then
  read -r -a targets <<<"$FUZZ_TARGETS"
else
  targets=()
  for f in fuzz/fuzz_targets/*.rs; do targets+=("$(basename "$f" .rs)"); done
fi

if ! command -v cargo-fuzz >/dev/null 2>&1; then
  echo "fuzz.sh: installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi

# cargo-fuzz passes nightly-only flags (-Zsanitizer, -Cpasses=sancov-module, ...);
# RUSTC_BOOTSTRAP lets the stable compiler accept them, so no nightly toolchain is needed.
export RUSTC_BOOTSTRAP=1
export CARGO_PROFILE_RELEASE_OPT_LEVEL="${FUZZ_OPT_LEVEL:-1}"
fuzz_flags=(--sanitizer "$sanitizer" --fuzz-dir fuzz --codegen-units "${FUZZ_CODEGEN_UNITS:-16}")

started=$(date +%s)
cargo fuzz build "${fuzz_flags[@]}"
echo "fuzz.sh: built ${#targets[@]} targets in $(($(date +%s) - started))s"

failed=()
summary=()
for t in "${targets[@]}"; do
  # libFuzzer adds what it finds to the first corpus directory: a scratch one under
  # fuzz/target, so the committed seeds (fuzz/corpus) and past findings
  # (fuzz/regressions) stay as they are.
  work="fuzz/target/corpus/$t"
  mkdir -p "$work"
  log="fuzz/target/fuzz-$t.log"
  echo "fuzz.sh: $t for ${seconds}s"
  set +e
  seeds=("fuzz/corpus/$t")
  [ -d "fuzz/regressions/$t" ] && seeds+=("fuzz/regressions/$t")
  cargo fuzz run "${fuzz_flags[@]}" "$t" "$work" "${seeds[@]}" -- \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=512 \
    -max_len=16384 -print_final_stats=1 >"$log" 2>&1
  rc=$?
  set -e
  execs=$(grep -h 'stat::number_of_executed_units' "$log" | awk '{s += $2} END {print s + 0}')
  rate=$(grep -h 'stat::average_exec_per_sec' "$log" | awk '{s += $2} END {print s + 0}')
  line="$t: ${execs} execs, ${rate} exec/s, corpus $(find "$work" -type f | wc -l) inputs"
  summary+=("$line")
  echo "fuzz.sh: $line"
  if [ "$rc" -ne 0 ]; then
    failed+=("$t")
    echo "fuzz.sh: $t FAILED (exit $rc); the end of its log ($log):"
    tail -n 60 "$log"
    ls -1 "fuzz/artifacts/$t" 2>/dev/null | sed 's/^/fuzz.sh:   artifact fuzz\/artifacts\/'"$t"'\//'
  fi
done

echo "fuzz.sh: ---- summary ($(($(date +%s) - started))s) ----"
printf 'fuzz.sh: %s\n' "${summary[@]}"
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz.sh: crashes in: ${failed[*]} (reproduce: RUSTC_BOOTSTRAP=1 cargo fuzz run -s $sanitizer <target> <artifact>)"
  exit 1
fi
