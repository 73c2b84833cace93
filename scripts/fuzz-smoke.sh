#!/usr/bin/env bash
# A short run of every cargo-fuzz target of the bgp codec (FUZZ_SECONDS each, default 10).
# cargo-fuzz needs nightly features: use the nightly toolchain when rustup has one, else stable
# with RUSTC_BOOTSTRAP=1. Installs cargo-fuzz from crates.io when missing.
set -euo pipefail
cd "$(dirname "$0")/../bgp/fuzz"
seconds=${FUZZ_SECONDS:-10}

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz: installing cargo-fuzz"
  cargo install cargo-fuzz --locked --quiet
fi
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  fuzz=(cargo +nightly fuzz)
else
  export RUSTC_BOOTSTRAP=1
  fuzz=(cargo fuzz)
fi

"${fuzz[@]}" build -O 2>&1 | tail -1
for target in $("${fuzz[@]}" list); do
  echo "fuzz: $target for ${seconds}s"
  # -timeout: a single input taking over 5 s is a hang worth failing on.
  "${fuzz[@]}" run -O "$target" -- -max_total_time="$seconds" -timeout=5 -print_final_stats=0 2>&1 \
    | grep -E "^(Done|==|SUMMARY|thread|panicked)" || true
  # cargo fuzz exits non-zero on a crash; pipefail would hide it behind grep, so check artifacts.
  if compgen -G "artifacts/$target/*" >/dev/null; then
    echo "fuzz: $target found a crash:" >&2
    ls "artifacts/$target" >&2
    exit 1
  fi
done
echo "fuzz: all targets ran clean"
