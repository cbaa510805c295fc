# Shell helpers shared by the side-by-side benchmark scripts (engine_vs_peers.sh,
# blocks.sh); sourced, not run. Expects ROOT (the repository) to be set.

log() { printf '%s %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() {
	log "error: $*"
	exit 1
}

# result BENCH CASE UNIT PROMGATE PEER PEER_VALUE: one row of benches/run.sh's table,
# appended to the TSV file $BENCH_RESULTS when it is set (scripts run alone print their own
# tables). UNIT says which way is better: "ms" (lower) or "req/s", "samples/s" (higher).
result() {
	[ -n "${BENCH_RESULTS:-}" ] || return 0
	printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$@" >>"$BENCH_RESULTS"
}

# need TOOL...: fails unless every tool is on PATH.
need() {
	local tool
	for tool in "$@"; do
		command -v "$tool" >/dev/null || die "$tool is not installed"
	done
}

# cargo_target_dir: cargo's target directory for ROOT (CARGO_TARGET_DIR included).
cargo_target_dir() {
	local dir
	dir="$(cd "$ROOT" && cargo metadata --format-version 1 --no-deps |
		sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')"
	[ -n "$dir" ] || die "cannot find cargo's target directory"
	echo "$dir"
}

# find_prometheus: sets PROM_DIR (holding prometheus and promtool) and PROM_VERSION;
# Prometheus 3.5 as REALENV.md installs it, else the Debian 2.42 package.
find_prometheus() {
	local dir
	PROM_DIR=""
	for dir in "${PROMGATE_PROMETHEUS_V3_DIR:-}" /opt/prom3/usr/bin /usr/bin; do
		if [ -n "$dir" ] && [ -x "$dir/prometheus" ] && [ -x "$dir/promtool" ]; then
			PROM_DIR="$dir"
			break
		fi
	done
	[ -n "$PROM_DIR" ] || die "Prometheus not found; see .ci/run for how to install 2.42 and 3.5"
	PROM_VERSION="$("$PROM_DIR/prometheus" --version 2>&1 |
		sed -n 's/^prometheus, version \([^ ]*\).*/\1/p')"
}

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

# wait_ok URL PID LOG NAME: polls URL until it answers 200, failing if PID exits.
wait_ok() {
	for _ in $(seq 1 600); do
		[ "$(curl -s -o /dev/null -w '%{http_code}' "$1" || true)" = 200 ] && return
		kill -0 "$2" 2>/dev/null || {
			tail -n 20 "$3" >&2
			die "$4 exited"
		}
		sleep 0.1
	done
	die "$4 is not ready after 60 s"
}

# stop PID...: SIGTERM to each, then wait for each (already gone is fine).
stop() {
	local pid
	for pid in "$@"; do
		kill -TERM "$pid" 2>/dev/null || true
	done
	for pid in "$@"; do
		wait "$pid" 2>/dev/null || true
	done
}

# work_dir NAME VAR...: sets WORK to a new temp dir; on exit stops the processes whose pids
# the variables VAR... hold then (scalars or arrays, empty when not started) and removes
# WORK, unless KEEP_WORKDIR=1.
work_dir() {
	WORK="$(mktemp -d -t "promgate-$1.XXXXXX")"
	shift
	WORK_PID_VARS=("$@")
	trap work_dir_cleanup EXIT
	trap 'exit 130' INT TERM
}

work_dir_cleanup() {
	local var pids=()
	for var in "${WORK_PID_VARS[@]}"; do
		local -n held="$var"
		pids+=("${held[@]}")
		unset -n held
	done
	stop "${pids[@]}"
	if [ "${KEEP_WORKDIR:-0}" = 1 ]; then
		log "kept $WORK"
	else
		rm -rf "$WORK"
	fi
}

# backfill OPENMETRICS DATA_DIR LOG [MAX_BLOCK_DURATION]: promtool's blocks from a file.
backfill() {
	"$PROM_DIR/promtool" tsdb create-blocks-from openmetrics \
		--max-block-duration="${4:-24h}" "$1" "$2" >"$3" 2>&1 ||
		{
			tail -n 20 "$3" >&2
			die "backfill failed"
		}
}

# start_prometheus DATA_DIR WORK [FLAG...]: Prometheus on a free port over DATA_DIR, with
# nothing to scrape and its config and log in WORK; sets PROM_PID and PROM_URL once it is
# ready.
start_prometheus() {
	local port data="$1" work="$2"
	shift 2
	port="$(free_port)"
	PROM_URL="http://127.0.0.1:$port"
	printf 'global: {}\nscrape_configs: []\n' >"$work/prometheus.yml"
	"$PROM_DIR/prometheus" \
		--config.file="$work/prometheus.yml" \
		--storage.tsdb.path="$data" \
		--storage.tsdb.retention.time=3650d \
		--web.listen-address="127.0.0.1:$port" \
		"$@" >"$work/prometheus.log" 2>&1 &
	PROM_PID=$!
	wait_ok "$PROM_URL/-/ready" "$PROM_PID" "$work/prometheus.log" prometheus
}
