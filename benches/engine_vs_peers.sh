#!/usr/bin/env bash
# promgate's PromQL engine against Prometheus 3.5 and VictoriaMetrics on the same data:
# one day of 1 600 series at 30 s (benches/support/engine_dataset.rs), each query class of
# benches/engine.rs run as a range query over the whole day at step 30 s, and a few as
# instant queries at its end.
#
#   benches/engine_vs_peers.sh
#
# What is timed, best of RUNS warm runs after one warm-up each:
#   - Prometheus: its own engine time, `execTotalTime` of `stats=all` (no JSON, no HTTP);
#   - VictoriaMetrics: wall time of the HTTP request with `nocache=1` and
#     -search.disableCache (it reports no engine time; JSON included, so it is flattered
#     less than the others);
#   - promgate: Engine::query_range / query_instant over a MemoryStore in
#     examples/engine_time.rs (no HTTP, no JSON).
# Then the JSON of the biggest answers (range/raw, range/rate): promgate writing the whole
# answer as it serves it (in pieces, into fresh memory) against Prometheus's HTTP wall time less its execTotalTime (encoding plus
# sending over loopback, so Prometheus is charged a little more than its encoding). Then
# peak RSS: promgate's timing process (data in memory, uncompressed) against the
# servers'. Prometheus is backfilled with promtool; VictoriaMetrics is fed through
# /api/v1/import/prometheus and skipped when its binary is absent. Everything started here
# runs on free loopback ports in a temp dir and is stopped on exit.
#
# Environment knobs (defaults in brackets):
#   RUNS [5]                      timed runs per query and server
#   SETTLE [5]                    seconds to wait after the servers start
#   VM_BIN [/opt/vm/usr/bin/victoria-metrics, else victoria-metrics on PATH]
#   KEEP_WORKDIR [0]              1: keep the temp dir with data and logs
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
RUNS="${RUNS:-5}"
SETTLE="${SETTLE:-5}"
KEEP_WORKDIR="${KEEP_WORKDIR:-0}"

# shellcheck source=benches/lib.sh
. "$ROOT/benches/lib.sh"

need curl python3
TARGET_DIR="$(cargo_target_dir)"
find_prometheus

VM_BIN="${VM_BIN:-}"
if [ -z "$VM_BIN" ]; then
	if [ -x /opt/vm/usr/bin/victoria-metrics ]; then
		VM_BIN=/opt/vm/usr/bin/victoria-metrics
	else
		VM_BIN="$(command -v victoria-metrics || true)"
	fi
fi

PROM_PID=""
VM_PID=""
work_dir engine PROM_PID VM_PID

log "building examples engine_data and engine_time (release)"
(cd "$ROOT" && cargo build --release --quiet --example engine_data --example engine_time)
DATA="$TARGET_DIR/release/examples/engine_data"
TIMER="$TARGET_DIR/release/examples/engine_time"

# The day ends 10 minutes ago: backfilled samples must be older than the head block, and
# VictoriaMetrics hides the last -search.latencyOffset (30 s) of data.
END_MS=$(($(date +%s) * 1000 - 600000))
END_MS=$((END_MS - END_MS % 30000))
START_MS=$((END_MS - 86400000))

# === Prometheus ===

log "backfilling Prometheus $PROM_VERSION"
mkdir -p "$WORK/prom"
"$DATA" --end-ms "$END_MS" --format openmetrics >"$WORK/data.om"
backfill "$WORK/data.om" "$WORK/prom" "$WORK/backfill.log" 24h
rm -f "$WORK/data.om"
start_prometheus "$WORK/prom" "$WORK"
log "prometheus on $PROM_URL"

# === VictoriaMetrics ===

VM_URL=""
VM_VERSION="absent"
if [ -n "$VM_BIN" ] && [ -x "$VM_BIN" ]; then
	VM_PORT="$(free_port)"
	VM_URL="http://127.0.0.1:$VM_PORT"
	"$VM_BIN" -storageDataPath="$WORK/vm" -httpListenAddr="127.0.0.1:$VM_PORT" \
		-retentionPeriod=100y -search.disableCache >"$WORK/vm.log" 2>&1 &
	VM_PID=$!
	wait_ok "$VM_URL/health" "$VM_PID" "$WORK/vm.log" victoria-metrics
	# Debian's build reports an empty version; its changelog names the package's.
	VM_VERSION="$(curl -s "$VM_URL/metrics" | sed -n 's/^vm_app_version{.*short_version="\([^"]*\)".*/\1/p')"
	if [ -z "$VM_VERSION" ]; then
		VM_VERSION="$(zcat "$(dirname "$VM_BIN")/../share/doc/victoria-metrics/changelog.Debian.gz" 2>/dev/null |
			sed -n '1s/.*(\([^)]*\)).*/\1/p')"
	fi
	log "victoria-metrics ${VM_VERSION:-?} on $VM_URL: importing"
	"$DATA" --end-ms "$END_MS" --format prometheus |
		curl -sS --fail -H 'Content-Type: text/plain' --data-binary @- \
			"$VM_URL/api/v1/import/prometheus" || die "import into victoria-metrics failed"
	curl -sS --fail "$VM_URL/internal/force_flush" >/dev/null
else
	log "victoria-metrics not found: skipped (see REALENV.md to install it)"
fi

sleep "$SETTLE"

# === promgate ===

log "timing promgate's engine"
"$TIMER" --end-ms "$END_MS" --runs "$RUNS" >"$WORK/promgate.tsv"
"$TIMER" --list >"$WORK/queries.tsv"

# === peers, and the table ===

log "timing the peers ($RUNS runs each)"
python3 - "$WORK" "$PROM_URL" "${VM_URL:-}" "$START_MS" "$END_MS" "$RUNS" "$PROM_PID" \
	"${VM_PID:-}" "$PROM_VERSION" "${VM_VERSION:-?}" <<'PY'
import json, os, sys, time, urllib.parse, urllib.request

work, prom, vm, start_ms, end_ms, runs, prom_pid, vm_pid, prom_v, vm_v = sys.argv[1:]
runs = int(runs)
start, end = int(start_ms) / 1000, int(end_ms) / 1000

def get(url, params):
    full = url + "?" + urllib.parse.urlencode(params)
    t0 = time.perf_counter()
    with urllib.request.urlopen(full, timeout=600) as r:
        body = r.read()
    return time.perf_counter() - t0, json.loads(body)

def best(fn):
    fn()  # warm-up
    return min(fn() for _ in range(runs))

def params(kind, q):
    if kind == "instant":
        return "/api/v1/query", {"query": q, "time": end}
    return "/api/v1/query_range", {"query": q, "start": start, "end": end, "step": 30}

def prom_time(kind, q):
    path, args = params(kind, q)
    def once():
        _, doc = get(prom + path, {**args, "stats": "all"})
        prom_series[q] = len(doc["data"]["result"])
        return doc["data"]["stats"]["timings"]["execTotalTime"] * 1000
    return best(once)

def vm_time(kind, q):
    path, args = params(kind, q)
    def once():
        wall, doc = get(vm + path, {**args, "nocache": 1})
        vm_series[q] = len(doc["data"]["result"])
        return wall * 1000
    return best(once)

def hwm_kib(pid):
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0

queries = [l.rstrip("\n").split("\t", 1) for l in open(f"{work}/queries.tsv")]
ours = {}
rss = (0, 0)
for line in open(f"{work}/promgate.tsv"):
    f = line.rstrip("\n").split("\t")
    if f[0] == "rss":
        rss = (int(f[1]), int(f[2]))
    else:
        ours[f[0]] = f[1:]

prom_series, vm_series = {}, {}
rows = []
for name, q in queries:
    kind = name.split("/", 1)[0]
    try:
        p = prom_time(kind, q)
    except Exception as e:  # noqa: BLE001 - a failing peer is a row, not the end
        print(f"prometheus {name}: {e}", file=sys.stderr)
        p = None
    v = None
    if vm:
        try:
            v = vm_time(kind, q)
        except Exception as e:  # noqa: BLE001
            print(f"victoria-metrics {name}: {e}", file=sys.stderr)
    o = ours.get(name, ["ERR", "missing"])
    g = None if o[0] == "ERR" else float(o[0])
    if g is None:
        print(f"promgate {name}: {o[1]}", file=sys.stderr)
    rows.append((name, p, v, g, prom_series.get(q), vm_series.get(q),
                 None if g is None else int(o[1])))

def ms(x):
    return "-" if x is None else f"{x:.2f}" if x < 10 else f"{x:.1f}"

def ratio(a, b):
    return "-" if a is None or b is None or b == 0 else f"{a / b:.2f}x"

print(f"\nrange/: over 24 h at step 30 s; instant/: at its end; best of {runs} warm runs "
      f"(Prometheus {prom_v}: execTotalTime; VictoriaMetrics {vm_v}: HTTP wall time, "
      f"nocache; promgate: Engine::query_range/query_instant)")
hdr = ("query", "prom ms", "vm ms", "promgate ms", "pg/prom", "pg/vm", "series p/v/pg")
print(f"{hdr[0]:<28} {hdr[1]:>9} {hdr[2]:>9} {hdr[3]:>12} {hdr[4]:>8} {hdr[5]:>8}  {hdr[6]}")
for name, p, v, g, ps, vs, gs in rows:
    counts = "/".join("-" if c is None else str(c) for c in (ps, vs, gs))
    print(f"{name:<28} {ms(p):>9} {ms(v):>9} {ms(g):>12} {ratio(g, p):>8} {ratio(g, v):>8}  {counts}")
# Writing the biggest answers: promgate's answer as served against what Prometheus spends
# after evaluating (HTTP wall time less execTotalTime: encoding, and sending over loopback).
json_rows = []
for name, q in queries:
    mine = ours.get("json/" + name)
    if mine is None or mine[0] == "ERR":
        continue
    kind = name.split("/", 1)[0]
    path, args = params(kind, q)
    def after_eval():
        wall, doc = get(prom + path, {**args, "stats": "all"})
        return wall * 1000 - doc["data"]["stats"]["timings"]["execTotalTime"] * 1000
    try:
        p = best(after_eval)
    except Exception as e:  # noqa: BLE001
        print(f"prometheus json {name}: {e}", file=sys.stderr)
        p = None
    json_rows.append((name, p, float(mine[0]), int(mine[1])))
if json_rows:
    print("\nJSON of the biggest answers (Prometheus: HTTP wall time less execTotalTime; "
          "promgate: the answer as served)")
    print(f"{'query':<28} {'MB':>7} {'prom ms':>9} {'promgate ms':>12} {'pg/prom':>8}")
    for name, p, g, size in json_rows:
        print(f"{name:<28} {size / 1e6:>7.1f} {ms(p):>9} {ms(g):>12} {ratio(g, p):>8}")

results = os.environ.get("BENCH_RESULTS")
if results:
    with open(results, "a") as out:
        for name, p, v, g, ps, vs, gs in rows:
            if g is not None and p is not None:
                out.write(f"engine\t{name}\tms\t{g:.3f}\tprometheus\t{p:.3f}\n")
            if g is not None and v is not None:
                out.write(f"engine\t{name}\tms\t{g:.3f}\tvictoria-metrics\t{v:.3f}\n")
        for name, p, g, size in json_rows:
            if p is not None:
                out.write(f"engine\tjson {name}\tms\t{g:.3f}\tprometheus\t{p:.3f}\n")
        out.write(f"engine\tpeak RSS\tMiB\t{rss[1] / 1024:.0f}\tprometheus\t{hwm_kib(prom_pid) / 1024:.0f}\n")
print(f"\npeak RSS: promgate engine_time {rss[1] / 1024:.0f} MiB "
      f"({rss[0] / 1024:.0f} MiB with the data loaded, before queries); "
      f"prometheus {hwm_kib(prom_pid) / 1024:.0f} MiB"
      + (f"; victoria-metrics {hwm_kib(vm_pid) / 1024:.0f} MiB" if vm_pid else ""))
PY
