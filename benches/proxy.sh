#!/usr/bin/env bash
# Load test of the proxy path: the same queries against one real Prometheus directly and
# through promgate in front of it, side by side.
#
#   benches/proxy.sh [PROMGATE_BINARY]
#
# PROMGATE_BINARY defaults to target/release/promgate (built with `cargo build --release`
# when missing). The script backfills two days of synthetic data (examples/synth.rs) into a
# fresh Prometheus 3.5 (2.42 when 3.5 is absent), starts it and promgate on free loopback
# ports, runs wrk on each endpoint and target and prints req/s, p50 and p99 per row and the
# promgate/prometheus ratios. Everything it starts is stopped on exit.
#
# Environment knobs (defaults in brackets):
#   DURATION [10s] CONNECTIONS [4] THREADS [2]    wrk settings
#   HOURS [48] INSTANCES [25]                     data: INSTANCES*9 series at 15 s
#   RANGE_QUERY [rate(demo_requests_total[5m])]
#   PROMETHEUS_ONLY [0]                           1: skip promgate (measure Prometheus alone)
#   KEEP_WORKDIR [0]                              1: keep the temp dir with data and logs
#   SETTLE [30]                                   seconds to wait after Prometheus starts
#   WITH_NGINX [1]                                also measure nginx as a plain reverse proxy
#                                                 (when installed), for scale
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DURATION="${DURATION:-10s}"
CONNECTIONS="${CONNECTIONS:-4}"
THREADS="${THREADS:-2}"
HOURS="${HOURS:-48}"
INSTANCES="${INSTANCES:-25}"
RANGE_QUERY="${RANGE_QUERY:-rate(demo_requests_total[5m])}"
PROMETHEUS_ONLY="${PROMETHEUS_ONLY:-0}"
KEEP_WORKDIR="${KEEP_WORKDIR:-0}"
SETTLE="${SETTLE:-30}"

secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }
log() { printf '%s %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

for tool in wrk curl; do
	command -v "$tool" >/dev/null || die "$tool is not installed (apt-get install -y $tool)"
done

TARGET_DIR="$(cd "$ROOT" && cargo metadata --format-version 1 --no-deps |
	sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')"
[ -n "$TARGET_DIR" ] || die "cannot find cargo's target directory"

PROMGATE="${1:-$TARGET_DIR/release/promgate}"
if [ "$PROMETHEUS_ONLY" != 1 ] && [ ! -x "$PROMGATE" ]; then
	log "building promgate (release)"
	(cd "$ROOT" && cargo build --release --bin promgate)
fi

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

PIDS=()
work_dir bench PIDS

# A port nobody listens on; bash's /dev/tcp fails to connect to a free one.
free_port() {
	local port
	while :; do
		port=$((20000 + RANDOM % 30000))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
			case " ${USED_PORTS:-} " in *" $port "*) continue ;; esac
			USED_PORTS="${USED_PORTS:-} $port"
			echo "$port"
			return
		fi
	done
}

# wait_ready NAME URL PID LOG: poll URL until HTTP 200, failing if PID exits or 60 s pass.
wait_ready() {
	local name="$1" url="$2" pid="$3" logfile="$4" i
	for i in $(seq 1 600); do
		if [ "$(curl -s -o /dev/null -w '%{http_code}' "$url" || true)" = 200 ]; then
			return 0
		fi
		if ! kill -0 "$pid" 2>/dev/null; then
			log "$name exited; end of $logfile:"
			tail -n 20 "$logfile" >&2
			return 1
		fi
		sleep 0.1
	done
	log "$name not ready after 60 s; end of $logfile:"
	tail -n 20 "$logfile" >&2
	return 1
}

# === data and Prometheus ===

log "building examples/synth (release)"
(cd "$ROOT" && cargo build --release --quiet --example synth)
SYNTH="$TARGET_DIR/release/examples/synth"

mkdir -p "$WORK/prometheus/data"
t0=$(date +%s.%N)
"$SYNTH" --hours "$HOURS" --instances "$INSTANCES" --end-minutes-ago 2 \
	>"$WORK/data.om" 2>"$WORK/synth.log"
t1=$(date +%s.%N)
"$PROM_DIR/promtool" tsdb create-blocks-from openmetrics --max-block-duration=24h \
	"$WORK/data.om" "$WORK/prometheus/data" >"$WORK/backfill.log" 2>&1 ||
	{ tail -n 20 "$WORK/backfill.log" >&2; die "backfill failed"; }
t2=$(date +%s.%N)
rm -f "$WORK/data.om"
log "data: $(cat "$WORK/synth.log"); generated in $(secs "$t0" "$t1")s, backfilled in $(secs "$t1" "$t2")s"

PROM_PORT="$(free_port)"
cat >"$WORK/prometheus/prometheus.yml" <<EOF
global:
  external_labels:
    cluster: bench
    replica: a
scrape_configs:
  - job_name: prometheus
    scrape_interval: 15s
    static_configs:
      - targets: ["127.0.0.1:$PROM_PORT"]
EOF
"$PROM_DIR/prometheus" \
	--config.file="$WORK/prometheus/prometheus.yml" \
	--storage.tsdb.path="$WORK/prometheus/data" \
	--storage.tsdb.retention.time=3650d \
	--web.listen-address="127.0.0.1:$PROM_PORT" \
	--web.enable-remote-write-receiver --web.enable-lifecycle --web.enable-admin-api \
	>"$WORK/prometheus.log" 2>&1 &
PIDS+=($!)
wait_ready prometheus "http://127.0.0.1:$PROM_PORT/-/ready" "${PIDS[-1]}" "$WORK/prometheus.log" ||
	die "prometheus did not start"
log "prometheus $PROM_VERSION on 127.0.0.1:$PROM_PORT"
# Let the first scrapes happen and the start-up compaction of the backfilled blocks finish:
# measured on a busy Prometheus, every ratio would be noise.
sleep "$SETTLE"

# === promgate ===

TARGETS=(prometheus)
declare -A BASE=([prometheus]="http://127.0.0.1:$PROM_PORT")
PROMGATE_FAILED=0
if [ "$PROMETHEUS_ONLY" != 1 ]; then
	GATE_PORT="$(free_port)"
	cat >"$WORK/promgate.toml" <<EOF
[server]
listen = "127.0.0.1:$GATE_PORT"

[query]
replica_labels = ["replica"]
partial_response = true
timeout = "2m"

[[backend]]
name = "bench-a"
kind = "prometheus"
url = "http://127.0.0.1:$PROM_PORT"
timeout = "30s"
EOF
	"$PROMGATE" run --config "$WORK/promgate.toml" --listen "127.0.0.1:$GATE_PORT" \
		>"$WORK/promgate.log" 2>&1 &
	PIDS+=($!)
	if wait_ready promgate "http://127.0.0.1:$GATE_PORT/api/v1/query?query=1" "${PIDS[-1]}" \
		"$WORK/promgate.log"; then
		TARGETS+=(promgate)
		BASE[promgate]="http://127.0.0.1:$GATE_PORT"
		log "promgate on 127.0.0.1:$GATE_PORT"
	else
		PROMGATE_FAILED=1
		log "promgate did not start: measuring Prometheus alone"
	fi
fi

# === a plain reverse proxy, for scale ===
# nginx relays bytes and nothing else: what any proxy costs on this machine.
if command -v nginx >/dev/null && [ "${WITH_NGINX:-1}" = 1 ]; then
	NGINX_PORT="$(free_port)"
	mkdir -p "$WORK/nginx"
	cat >"$WORK/nginx/nginx.conf" <<EOF
worker_processes 2;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log;
daemon off;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $WORK/nginx;
  proxy_temp_path $WORK/nginx;
  upstream prometheus { server 127.0.0.1:$PROM_PORT; keepalive 32; }
  server {
    listen 127.0.0.1:$NGINX_PORT;
    location / {
      proxy_pass http://prometheus;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
    }
  }
}
EOF
	nginx -c "$WORK/nginx/nginx.conf" >"$WORK/nginx.log" 2>&1 &
	PIDS+=($!)
	if wait_ready nginx "http://127.0.0.1:$NGINX_PORT/-/ready" "${PIDS[-1]}" "$WORK/nginx.log"; then
		TARGETS+=(nginx)
		BASE[nginx]="http://127.0.0.1:$NGINX_PORT"
		log "nginx on 127.0.0.1:$NGINX_PORT"
	fi
fi

# === load ===

urlencode() {
	local s="$1" out="" c i
	for ((i = 0; i < ${#s}; i++)); do
		c="${s:i:1}"
		case "$c" in
		[a-zA-Z0-9.~_-]) out+="$c" ;;
		*) out+="$(printf '%%%02X' "'$c")" ;;
		esac
	done
	printf '%s' "$out"
}

END_S=$(($(date +%s) - 120))
START_S=$((END_S - HOURS * 3600))
declare -A PATHS=(
	[instant_up]="/api/v1/query?query=up"
	[range_${HOURS}h_60s]="/api/v1/query_range?query=$(urlencode "$RANGE_QUERY")&start=$START_S&end=$END_S&step=60"
)
ENDPOINTS=(instant_up "range_${HOURS}h_60s")

cat >"$WORK/report.lua" <<'EOF'
done = function(summary, latency, requests)
  local errors = summary.errors.connect + summary.errors.read + summary.errors.write
    + summary.errors.status + summary.errors.timeout
  io.write(string.format("RESULT %.1f %.2f %.2f %d\n",
    summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, errors))
end
EOF

declare -A RPS P50 P99 ERRS
for endpoint in "${ENDPOINTS[@]}"; do
	for target in "${TARGETS[@]}"; do
		url="${BASE[$target]}${PATHS[$endpoint]}"
		code="$(curl -s -o "$WORK/warmup.json" -w '%{http_code}' "$url" || true)"
		if [ "$code" != 200 ]; then
			log "$target $endpoint answered HTTP $code: $(head -c 300 "$WORK/warmup.json")"
		fi
		log "wrk $target $endpoint ($DURATION, $CONNECTIONS connections, $THREADS threads)"
		line="$(wrk -t "$THREADS" -c "$CONNECTIONS" -d "$DURATION" --timeout 60s \
			-s "$WORK/report.lua" "$url" | grep '^RESULT' || true)"
		read -r _ rps p50 p99 errs <<<"${line:-RESULT 0 0 0 0}"
		RPS[$endpoint,$target]=$rps
		P50[$endpoint,$target]=$p50
		P99[$endpoint,$target]=$p99
		ERRS[$endpoint,$target]=$errs
	done
done

# === report ===

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else printf "-" }'; }

echo
echo "Prometheus $PROM_VERSION, $(cat "$WORK/synth.log"), wrk -t$THREADS -c$CONNECTIONS -d$DURATION"
printf '%-16s %-11s %10s %10s %10s %7s   %s\n' endpoint target "req/s" "p50 ms" "p99 ms" errors \
	"proxy/prometheus (req/s, p50, p99)"
for endpoint in "${ENDPOINTS[@]}"; do
	for target in "${TARGETS[@]}"; do
		k="$endpoint,$target"
		extra=""
		if [ "$target" != prometheus ]; then
			p="$endpoint,prometheus"
			extra="$(ratio "${RPS[$k]}" "${RPS[$p]}") $(ratio "${P50[$k]}" "${P50[$p]}") $(ratio "${P99[$k]}" "${P99[$p]}")"
			if [ "$target" = promgate ] && [ -n "${BENCH_RESULTS:-}" ]; then
				printf 'proxy\t%s throughput\treq/s\t%s\tprometheus\t%s\n' "$endpoint" "${RPS[$k]}" "${RPS[$p]}" >>"$BENCH_RESULTS"
				printf 'proxy\t%s p99 latency\tms\t%s\tprometheus\t%s\n' "$endpoint" "${P99[$k]}" "${P99[$p]}" >>"$BENCH_RESULTS"
			fi
		fi
		printf '%-16s %-11s %10s %10s %10s %7s   %s\n' "$endpoint" "$target" \
			"${RPS[$k]}" "${P50[$k]}" "${P99[$k]}" "${ERRS[$k]}" "$extra"
	done
done
exit "$PROMGATE_FAILED"
