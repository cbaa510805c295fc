#!/usr/bin/env bash
# Builds every fuzz target and runs each for a while; exits non-zero when one finds a crash
# (the input is kept in fuzz/artifacts/<target>/).
#
#   fuzz/run.sh [TARGET...]        all targets when none is named
#
# Environment knobs (defaults in brackets):
#   FUZZ_SECONDS [20]   time per target; CI runs this short pass, a night's run uses hours
#   FUZZ_JOBS [1]       parallel fuzzing processes per target
#
# Stable Rust is enough: the targets are built without a sanitizer (`-s none`), with
# libFuzzer's coverage instrumentation; a nightly toolchain can add AddressSanitizer with
# `cargo +nightly fuzz run TARGET` by hand. New inputs go to a temporary corpus seeded from
# fuzz/corpus/<target>, so the seeds in the repository stay as they are.
set -euo pipefail

FUZZ_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
FUZZ_SECONDS="${FUZZ_SECONDS:-20}"
FUZZ_JOBS="${FUZZ_JOBS:-1}"

if ! command -v cargo-fuzz >/dev/null; then
	cargo install --locked cargo-fuzz
fi

cd "$FUZZ_DIR"
if [ "$#" -gt 0 ]; then
	targets=("$@")
else
	mapfile -t targets < <(cargo fuzz list)
fi

if [ "$#" -gt 0 ]; then
	for target in "${targets[@]}"; do cargo fuzz build -s none -O "$target"; done
else
	cargo fuzz build -s none -O
fi

parallel=()
if [ "$FUZZ_JOBS" -gt 1 ]; then
	parallel=(-jobs="$FUZZ_JOBS" -workers="$FUZZ_JOBS")
fi

work="$(mktemp -d -t promgate-fuzz.XXXXXX)"
trap 'rm -rf "$work"' EXIT
failed=()
for target in "${targets[@]}"; do
	mkdir -p "$work/$target" "corpus/$target"
	echo "fuzzing $target for ${FUZZ_SECONDS}s"
	if ! cargo fuzz run -s none -O "$target" "$work/$target" "corpus/$target" -- \
		-max_total_time="$FUZZ_SECONDS" -print_final_stats=1 "${parallel[@]}" >"$work/$target.log" 2>&1; then
		failed+=("$target")
		tail -n 60 "$work/$target.log"
	else
		grep -a -E '^(Done|stat::number_of_executed_units)' "$work/$target.log" | tail -n 1 || true
	fi
done

if [ "${#failed[@]}" -gt 0 ]; then
	echo "fuzzing found crashes in: ${failed[*]} (inputs in fuzz/artifacts/)" >&2
	exit 1
fi
echo "fuzzing: no crash in ${#targets[@]} targets"
