#!/usr/bin/env bash
# Reading every raw sample of a real Prometheus: promgate's remote read client (streamed XOR
# chunks, then SAMPLES) against Prometheus's own /api/v1/query_range of the raw selector.
#
#   benches/remote_read.sh
#
# The script backfills synthetic data (examples/synth.rs: INSTANCES*9 series at 15 s) into
# a fresh Prometheus 3.5 (2.42 when 3.5 is absent), starts it on a free loopback port with
# no scrapes, and times:
#   - examples/remote_read_bench.rs: one remote read of all of it per response type, every
#     sample decoded (chunks with XorIter::decode_into);
#   - curl on /api/v1/query_range of the same selector at step 15 s aligned to the samples,
#     in windows of at most 11 000 points per series (Prometheus refuses more), so each
#     step lands on one raw sample; plain JSON, no gzip.
# Each measurement runs twice and the second run counts, so both sides read warm data. It
# prints one row per path and how many times faster than query_range each is. Everything
# it starts is stopped on exit.
#
# Environment knobs (defaults in brackets):
#   HOURS [48] INSTANCES [28]    data: 28*9 = 252 series x 48 h at 15 s (~2.9 M samples)
#   SETTLE [10]                  seconds to wait after Prometheus starts
#   KEEP_WORKDIR [0]             1: keep the temp dir with data and logs
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
HOURS="${HOURS:-48}"
INSTANCES="${INSTANCES:-28}"
SETTLE="${SETTLE:-10}"
KEEP_WORKDIR="${KEEP_WORKDIR:-0}"
SELECTOR='{__name__=~"demo_.*"}'
MATCHER='__name__=~demo_.*'
STEP_MS=15000
MAX_POINTS=11000

log() { printf '%s %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() {
	log "error: $*"
	exit 1
}

for tool in curl python3; do
	command -v "$tool" >/dev/null || die "$tool is not installed"
done

TARGET_DIR="$(cd "$ROOT" && cargo metadata --format-version 1 --no-deps |
	sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')"
[ -n "$TARGET_DIR" ] || die "cannot find cargo's target directory"

# Prometheus 3.5 as REALENV.md installs it, else the Debian 2.42 package.
PROM_DIR=""
for dir in "${PROMGATE_PROMETHEUS_V3_DIR:-}" /opt/prom3/usr/bin /usr/bin; do
	if [ -n "$dir" ] && [ -x "$dir/prometheus" ] && [ -x "$dir/promtool" ]; then
		PROM_DIR="$dir"
		break
	fi
done
[ -n "$PROM_DIR" ] || die "Prometheus not found; see .ci/run for how to install 2.42 and 3.5"
PROM_VERSION="$("$PROM_DIR/prometheus" --version 2>&1 | sed -n 's/^prometheus, version \([^ ]*\).*/\1/p')"

PROM_PID=""
work_dir rr PROM_PID

# A port nobody listens on; bash's /dev/tcp fails to connect to a free one.
free_port() {
	local port
	while :; do
		port=$((20000 + RANDOM % 30000))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
			echo "$port"
			return
		fi
	done
}

# === data and Prometheus ===

log "building examples synth and remote_read_bench (release)"
(cd "$ROOT" && cargo build --release --quiet --example synth --example remote_read_bench)
SYNTH="$TARGET_DIR/release/examples/synth"
BENCH="$TARGET_DIR/release/examples/remote_read_bench"

mkdir -p "$WORK/data"
"$SYNTH" --hours "$HOURS" --instances "$INSTANCES" --end-minutes-ago 2 \
	>"$WORK/data.om" 2>"$WORK/synth.log"
"$PROM_DIR/promtool" tsdb create-blocks-from openmetrics --max-block-duration=24h \
	"$WORK/data.om" "$WORK/data" >"$WORK/backfill.log" 2>&1 ||
	{
		tail -n 20 "$WORK/backfill.log" >&2
		die "backfill failed"
	}
rm -f "$WORK/data.om"
log "data: $(cat "$WORK/synth.log")"

# The exact span of the data, from the blocks: first sample and last sample (a block's max
# time is exclusive).
read -r START_MS END_MS < <("$PROM_DIR/promtool" tsdb list "$WORK/data" |
	awk 'NR > 1 { if (min == "" || $2 < min) min = $2; if ($3 > max) max = $3 }
	     END { printf "%.0f %.0f\n", min, max - 1 }')
[ -n "$START_MS" ] || die "no blocks in $WORK/data"

PORT="$(free_port)"
URL="http://127.0.0.1:$PORT"
printf 'global: {}\nscrape_configs: []\n' >"$WORK/prometheus.yml"
"$PROM_DIR/prometheus" \
	--config.file="$WORK/prometheus.yml" \
	--storage.tsdb.path="$WORK/data" \
	--storage.tsdb.retention.time=3650d \
	--web.listen-address="127.0.0.1:$PORT" \
	>"$WORK/prometheus.log" 2>&1 &
PROM_PID=$!
for _ in $(seq 1 600); do
	[ "$(curl -s -o /dev/null -w '%{http_code}' "$URL/-/ready" || true)" = 200 ] && break
	kill -0 "$PROM_PID" 2>/dev/null || {
		tail -n 20 "$WORK/prometheus.log" >&2
		die "prometheus exited"
	}
	sleep 0.1
done
log "prometheus $PROM_VERSION on $URL, data $START_MS..$END_MS ms"
# Start-up work on the backfilled blocks would otherwise land in the first measurement.
sleep "$SETTLE"

# === promgate's remote read client ===

for run in 1 2; do
	"$BENCH" "$URL" --match "$MATCHER" --start "$START_MS" --end "$END_MS" >"$WORK/rr.$run"
done
cat "$WORK/rr.2" >&2

# === Prometheus's query_range ===

# One window: its time, bytes and (untimed) series and point counts, on one line.
query_window() {
	local from="$1" to="$2" out="$WORK/qr.json" meta
	meta="$(curl -sS -o "$out" -w '%{http_code} %{time_total} %{size_download}' \
		--get "$URL/api/v1/query_range" \
		--data-urlencode "query=$SELECTOR" \
		--data-urlencode "start=$(awk -v t="$from" 'BEGIN { printf "%.3f", t / 1000 }')" \
		--data-urlencode "end=$(awk -v t="$to" 'BEGIN { printf "%.3f", t / 1000 }')" \
		--data-urlencode "step=$((STEP_MS / 1000))")"
	[ "${meta%% *}" = 200 ] || die "query_range answered ${meta%% *}: $(head -c 300 "$out")"
	python3 -c '
import json, sys
r = json.load(open(sys.argv[1]))["data"]["result"]
print(sys.argv[2], sys.argv[3], len(r), sum(len(s["values"]) for s in r))
' "$out" "$(echo "$meta" | cut -d" " -f2)" "$(echo "$meta" | cut -d" " -f3)"
}

query_all() {
	local from="$START_MS" to
	while [ "$from" -le "$END_MS" ]; do
		to=$((from + (MAX_POINTS - 1) * STEP_MS))
		[ "$to" -le "$END_MS" ] || to="$END_MS"
		query_window "$from" "$to"
		from=$((to + STEP_MS))
	done
}

for run in 1 2; do
	query_all >"$WORK/qr.$run"
done
# Seconds and bytes add up over windows; series is the most any window saw.
read -r QR_SECS QR_BYTES QR_SERIES QR_SAMPLES QR_WINDOWS < <(awk '
	{ s += $1; b += $2; if ($3 > n) n = $3; p += $4; w++ } END { printf "%f %.0f %d %.0f %d\n", s, b, n, p, w }' "$WORK/qr.2")

# === table ===

{
	sed 's/=/ /g' "$WORK/rr.2" | awk '{ print $2, $4, $6, $8, $12 }'
	echo "query_range_json_${QR_WINDOWS}_windows $QR_SECS $QR_SERIES $QR_SAMPLES $QR_BYTES"
} | awk -v qr="$QR_SECS" '
	BEGIN {
		printf "%-30s %9s %7s %10s %12s %12s %10s\n", "path", "secs", "series", "samples",
			"samples/s", "bytes", "speedup"
	}
	{
		printf "%-30s %9.3f %7d %10d %12.0f %12d %9.1fx\n", $1, $2, $3, $4, $4 / $2, $5, qr / $2
	}'
echo "speedup: query_range time / this path's time (Prometheus $PROM_VERSION, $(nproc) cores)"
if [ -n "${BENCH_RESULTS:-}" ]; then
	sed 's/=/ /g' "$WORK/rr.2" | awk -v qr="$QR_SECS" -v qs="$QR_SAMPLES" '
		{ printf "remote read\t%s decode\tsamples/s\t%.0f\tprometheus query_range\t%.0f\n", $2, $8 / $4, qs / qr }' >>"$BENCH_RESULTS"
fi
