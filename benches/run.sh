#!/usr/bin/env bash
# The whole side-by-side benchmark suite in one command, ending in one table of
# promgate / peer ratios (the table the README's performance section shows):
#
#   benches/run.sh
#
# Runs, one after another (each starts and stops its own real servers on loopback):
#   proxy        benches/proxy.sh: wrk through promgate vs straight to Prometheus 3.5
#   engine       benches/engine_vs_peers.sh: engine time per query class vs Prometheus 3.5
#                and VictoriaMetrics (when installed)
#   remote_read  benches/remote_read.sh: raw samples by remote read (decoded) vs
#                Prometheus's query_range of the same selector
#   blocks       benches/blocks.sh: TSDB blocks from S3 (moto) cold and warm vs Prometheus
#                reading the same blocks from disk
#   dedup        cargo bench --bench dedup and --bench xor_decode: promgate alone (no peer
#                runs here: Thanos's dedup is Go, and no Go toolchain can be installed)
# Each script's own report is kept in the output directory; a script that fails is named
# and the rest still run.
#
# Environment knobs (defaults in brackets):
#   ONLY ["proxy engine remote_read blocks dedup"]   which parts to run
#   OUT [a new temp dir]                              where the logs and results.tsv go
# plus each script's own knobs (DURATION, RUNS, ...), passed through.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=benches/lib.sh
source "$ROOT/benches/lib.sh"

ONLY="${ONLY:-proxy engine remote_read blocks dedup}"
OUT="${OUT:-$(mktemp -d -t promgate-benches.XXXXXX)}"
mkdir -p "$OUT"
export BENCH_RESULTS="$OUT/results.tsv"
: >"$BENCH_RESULTS"
BEGAN=$(date +%s)

log "building promgate and the benchmark helpers (release)"
(cd "$ROOT" && cargo build --release --bin promgate --examples >"$OUT/build.log" 2>&1) ||
	{
		tail -n 30 "$OUT/build.log" >&2
		die "release build failed"
	}

FAILED=()
run_part() {
	local part="$1" script="$2"
	log "$part: $script (report in $OUT/$part.log)"
	if ! bash "$ROOT/benches/$script" >"$OUT/$part.log" 2>"$OUT/$part.err"; then
		log "$part failed: $(tail -n 3 "$OUT/$part.err" | tr '\n' ' ')"
		FAILED+=("$part")
	fi
}

# criterion's "thrpt: [low mid high]" of each benchmark, as samples per second.
criterion_rows() {
	local bench="$1"
	(cd "$ROOT" && cargo bench --bench "$bench" >"$OUT/$bench.log" 2>&1) || {
		FAILED+=("$bench")
		return
	}
	awk -v bench="$bench" '
		/^[a-z_]+\/[^ ]+/ { name = $1 }
		/thrpt:/ && !/%/ {
			v = $4; unit = $5
			f = unit ~ /^G/ ? 1e9 : unit ~ /^M/ ? 1e6 : unit ~ /^K/ ? 1e3 : 1
			printf "%s\t%s\tsamples/s\t%.0f\t-\t-\n", bench, name, v * f
		}' "$OUT/$bench.log" >>"$BENCH_RESULTS"
}

for part in $ONLY; do
	case "$part" in
	proxy) run_part proxy proxy.sh ;;
	engine) run_part engine engine_vs_peers.sh ;;
	remote_read) run_part remote_read remote_read.sh ;;
	blocks) run_part blocks blocks.sh ;;
	dedup)
		log "dedup and xor_decode: cargo bench"
		criterion_rows dedup
		criterion_rows xor_decode
		;;
	*) die "unknown part $part (proxy engine remote_read blocks dedup)" ;;
	esac
done

# === table ===
find_prometheus
cpu="$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)"
mem="$(awk '/^MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo)"
echo
echo "promgate $(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo '?') against Prometheus $PROM_VERSION, $(date -u +%Y-%m-%d), $(nproc) cores ($cpu), $mem"
echo
echo "| benchmark | case | unit | promgate | peer | peer's | promgate/peer |"
echo "|---|---|---|---:|---|---:|---:|"
awk -F '\t' '
	function num(x) { return x == "-" ? "-" : x + 0 < 10 ? sprintf("%.2f", x) : sprintf("%.0f", x) }
	{
		ratio = "-"
		if ($6 != "-" && $6 + 0 > 0) {
			r = $4 / $6
			better = ($3 == "ms" || $3 == "MiB") ? (r <= 1) : (r >= 1)
			ratio = sprintf("%.2fx%s", r, better ? "" : " (worse)")
		}
		printf "| %s | %s | %s | %s | %s | %s | %s |\n", $1, $2, $3, num($4), $5, num($6), ratio
	}' "$BENCH_RESULTS"
echo
echo "ms and MiB: lower is better; req/s and samples/s: higher is better. Reports: $OUT"
if [ "${#FAILED[@]}" -gt 0 ]; then
	log "failed: ${FAILED[*]} (see their .err files in $OUT)"
fi
log "done in $(($(date +%s) - BEGAN)) s"
[ "${#FAILED[@]}" -eq 0 ]
