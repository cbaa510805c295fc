#!/usr/bin/env bash
# Soak run: promgate (release) in front of one real Prometheus under steady load for
# DURATION seconds, its resident memory sampled every SAMPLE_EVERY seconds. Not part of CI.
#
#   benches/soak.sh
#
# Synthetic data (examples/synth.rs) is backfilled into a fresh Prometheus 3.5 (2.42 when
# 3.5 is absent); promgate runs with small request slots and a queue (the limits under
# test) and examples/load_client.rs sends range, instant and series requests from
# CONCURRENCY clients. Printed: the RSS series (seconds since start, MiB), its first, min,
# max and last, and the load client's summary (statuses, latency of the answered requests,
# failures). Exits non-zero when the load client saw failures (connection errors, answers
# other than data or Prometheus-format shedding) or promgate exited. Everything started
# here runs on free loopback ports in a temp dir and is stopped on exit.
#
# Environment knobs (defaults in brackets):
#   DURATION [600]        seconds of load
#   SAMPLE_EVERY [10]     seconds between RSS samples
#   CONCURRENCY [16]      load clients
#   SLOTS [4] QUEUE [8] QUEUE_TIMEOUT [1s]   promgate's server.max_concurrent_requests,
#                                            max_queued_requests, queue_timeout
#   HOURS [24] INSTANCES [25]                data: INSTANCES*9 series at 15 s
#   KEEP_WORKDIR [0]      1: keep the temp dir with data, config and logs
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DURATION="${DURATION:-600}"
SAMPLE_EVERY="${SAMPLE_EVERY:-10}"
CONCURRENCY="${CONCURRENCY:-16}"
SLOTS="${SLOTS:-4}"
QUEUE="${QUEUE:-8}"
QUEUE_TIMEOUT="${QUEUE_TIMEOUT:-1s}"
HOURS="${HOURS:-24}"
INSTANCES="${INSTANCES:-25}"
KEEP_WORKDIR="${KEEP_WORKDIR:-0}"

# shellcheck source=benches/lib.sh
. "$ROOT/benches/lib.sh"

need curl awk python3
TARGET_DIR="$(cargo_target_dir)"
find_prometheus

PROM_PID=""
GATE_PID=""
work_dir soak PROM_PID GATE_PID

log "building promgate and examples synth, load_client (release)"
(cd "$ROOT" && cargo build --release --quiet --bin promgate --example synth --example load_client)
PROMGATE="$TARGET_DIR/release/promgate"
SYNTH="$TARGET_DIR/release/examples/synth"
LOAD="$TARGET_DIR/release/examples/load_client"

log "backfilling $HOURS h of $INSTANCES instances (Prometheus $PROM_VERSION)"
"$SYNTH" --hours "$HOURS" --instances "$INSTANCES" --end-minutes-ago 10 >"$WORK/data.om"
mkdir -p "$WORK/prom" "$WORK/data"
backfill "$WORK/data.om" "$WORK/data" "$WORK/backfill.log"
rm -f "$WORK/data.om"
start_prometheus "$WORK/data" "$WORK/prom"
log "Prometheus ready at $PROM_URL"

GATE_PORT="$(free_port)"
GATE_URL="http://127.0.0.1:$GATE_PORT"
cat >"$WORK/promgate.toml" <<EOF
[server]
listen = "127.0.0.1:$GATE_PORT"
watch_config = false
max_concurrent_requests = $SLOTS
max_queued_requests = $QUEUE
queue_timeout = "$QUEUE_TIMEOUT"

[query]
timeout = "30s"

[[backend]]
name = "soak"
kind = "prometheus"
url = "$PROM_URL"
max_response_bytes = "64MiB"
EOF
"$PROMGATE" run --config "$WORK/promgate.toml" >"$WORK/promgate.log" 2>&1 &
GATE_PID=$!
wait_ok "$GATE_URL/-/ready" "$GATE_PID" "$WORK/promgate.log" promgate
log "promgate ready at $GATE_URL (pid $GATE_PID)"

enc() { python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1]))' "$1"; }
NOW=$(date +%s)
END=$((NOW - 15 * 60))
URLS=(
	"$GATE_URL/api/v1/query_range?query=$(enc 'sum by (instance) (rate(demo_requests_total[5m]))')&start=$((END - 6 * 3600))&end=$END&step=60"
	"$GATE_URL/api/v1/query_range?query=$(enc 'demo_temperature_celsius')&start=$((END - 3600))&end=$END&step=15"
	"$GATE_URL/api/v1/query?query=$(enc 'histogram_quantile(0.9, sum by (le) (rate(demo_request_duration_seconds_bucket[5m])))')&time=$END"
	"$GATE_URL/api/v1/series?match[]=$(enc 'demo_requests_total')&start=$((END - 3600))&end=$END"
)

rss_mib() { awk '/^VmRSS:/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status"; }

log "load: $CONCURRENCY clients for $DURATION s; RSS every $SAMPLE_EVERY s"
"$LOAD" --concurrency "$CONCURRENCY" --duration "$DURATION" "${URLS[@]}" >"$WORK/load.out" 2>&1 &
LOAD_PID=$!
BEGAN=$(date +%s)
SERIES=()
echo "seconds rss_mib"
while kill -0 "$LOAD_PID" 2>/dev/null; do
	kill -0 "$GATE_PID" 2>/dev/null || {
		tail -n 20 "$WORK/promgate.log" >&2
		die "promgate exited during the soak"
	}
	rss="$(rss_mib "$GATE_PID")"
	t=$(($(date +%s) - BEGAN))
	SERIES+=("$rss")
	echo "$t $rss"
	# Sleep in short steps so the run ends soon after the load does.
	for _ in $(seq 1 "$((SAMPLE_EVERY * 10))"); do
		kill -0 "$LOAD_PID" 2>/dev/null || break
		sleep 0.1
	done
done
LOAD_RC=0
wait "$LOAD_PID" || LOAD_RC=$?
rss="$(rss_mib "$GATE_PID")"
SERIES+=("$rss")
echo "$(($(date +%s) - BEGAN)) $rss"

printf '%s\n' "${SERIES[@]}" | awk '
	NR == 1 { first = $1; min = $1; max = $1 }
	{ if ($1 < min) min = $1; if ($1 > max) max = $1; last = $1 }
	END { printf "RSS MiB: first %.1f min %.1f max %.1f last %.1f (%d samples)\n", first, min, max, last, NR }'
cat "$WORK/load.out"
refused="$(curl -s "$GATE_URL/metrics" | grep '^promgate_http_requests_refused_total' || true)"
[ -n "$refused" ] && echo "$refused"
[ "$LOAD_RC" = 0 ] || die "the load client saw failures"
