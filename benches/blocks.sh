#!/usr/bin/env bash
# promgate's blocks backend reading TSDB blocks from S3 against Prometheus 3.5 reading the
# same blocks from local disk: 1 000 series × 7 days at 60 s (the engine benchmarks' data
# set, benches/support/engine_dataset.rs, over a week and 25 of its 40 targets), written
# into blocks by promtool (with --max-block-duration=24h it cuts 18-hour blocks, the largest
# of its 2 h × 3^n ranges that fits; promtool reads the whole file once per block, so 2-hour
# blocks would take about 8 times as long), uploaded by `promgate upload` to moto's S3 server on
# loopback. Each query class of benches/engine.rs runs through HTTP
# /api/v1/query_range over the last day (step STEP_DAY) and over the whole week (step
# STEP_WEEK).
#
#   benches/blocks.sh
#
# What is timed, wall time of the HTTP request (JSON included) for both:
#   - promgate cold: promgate is restarted for every query and range, so its cache is empty;
#     it opens the blocks before /-/ready answers (bucket listing, meta.json, index headers:
#     "open", reported apart), then the query runs once and its reads from the bucket are
#     taken from promgate's /metrics;
#   - promgate warm: best of RUNS runs right after, in the same process;
#   - Prometheus: best of RUNS after one warm-up (its blocks are in the page cache).
# Answers are compared (series, points, values to 1e-9 relative). Then peak RSS (VmHWM):
# the largest of the per-query promgate processes, one promgate that ran every query with
# one cache, and Prometheus. Everything started here runs on free loopback ports in a temp
# dir and is stopped on exit.
#
# Environment knobs (defaults in brackets):
#   RUNS [5]                      warm runs per query and server
#   DAYS [7]  SCRAPE_SECONDS [60]  TARGETS [25]   the data (40 series per target)
#   BLOCK_DURATION [24h]          promtool's --max-block-duration
#   STEP_DAY [60]  STEP_WEEK [300]  range query steps in seconds
#   CACHE_SIZE [4GiB]             promgate's cache_size
#   SETTLE [5]                    seconds to wait after Prometheus starts
#   KEEP_WORKDIR [0]              1: keep the temp dir with data and logs
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
RUNS="${RUNS:-5}"
DAYS="${DAYS:-7}"
SCRAPE_SECONDS="${SCRAPE_SECONDS:-60}"
TARGETS="${TARGETS:-25}"
BLOCK_DURATION="${BLOCK_DURATION:-24h}"
STEP_DAY="${STEP_DAY:-60}"
STEP_WEEK="${STEP_WEEK:-300}"
CACHE_SIZE="${CACHE_SIZE:-4GiB}"
SETTLE="${SETTLE:-5}"
KEEP_WORKDIR="${KEEP_WORKDIR:-0}"

# shellcheck source=benches/lib.sh
. "$ROOT/benches/lib.sh"

need curl python3
python3 -c 'import moto.server' 2>/dev/null || die "moto is not installed (pip install 'moto[server]')"
TARGET_DIR="$(cargo_target_dir)"
find_prometheus

BEGAN=$(date +%s)
PROM_PID=""
MOTO_PID=""
work_dir blocks PROM_PID MOTO_PID

log "building promgate and example engine_data (release)"
(cd "$ROOT" && cargo build --release --quiet --bin promgate --example engine_data)
PROMGATE="$TARGET_DIR/release/promgate"
DATA="$TARGET_DIR/release/examples/engine_data"

# The data ends an hour ago on the week step's grid: backfilled samples must be older
# than Prometheus's head block.
END_MS=$(($(date +%s) * 1000 - 3600000))
END_MS=$((END_MS - END_MS % (STEP_WEEK * 1000)))

# === the blocks ===

log "writing $DAYS days of $((TARGETS * 40)) series at ${SCRAPE_SECONDS}s as OpenMetrics"
t0=$(date +%s)
"$DATA" --end-ms "$END_MS" --format openmetrics --days "$DAYS" \
	--scrape-seconds "$SCRAPE_SECONDS" --targets "$TARGETS" >"$WORK/data.om"
t1=$(date +%s)
log "$(du -h "$WORK/data.om" | cut -f1) in $((t1 - t0)) s; promtool backfill, $BLOCK_DURATION blocks"
mkdir -p "$WORK/blocks"
backfill "$WORK/data.om" "$WORK/blocks" "$WORK/backfill.log" "$BLOCK_DURATION"
t2=$(date +%s)
rm -f "$WORK/data.om"
BLOCKS=$(find "$WORK/blocks" -name meta.json | wc -l)
log "$BLOCKS blocks, $(du -sh "$WORK/blocks" | cut -f1), in $((t2 - t1)) s"

# === moto, and the upload ===

MOTO_PORT="$(free_port)"
MOTO_URL="http://127.0.0.1:$MOTO_PORT"
python3 -m moto.server -H 127.0.0.1 -p "$MOTO_PORT" >"$WORK/moto.log" 2>&1 &
MOTO_PID=$!
wait_ok "$MOTO_URL/" "$MOTO_PID" "$WORK/moto.log" moto
curl -sS --fail -X PUT "$MOTO_URL/blocks" >/dev/null || die "cannot create the bucket"
t3=$(date +%s)
"$PROMGATE" upload --from "$WORK/blocks" --bucket blocks --endpoint "$MOTO_URL" \
	--path-style --access-key bench --secret-key bench >"$WORK/upload.log" 2>&1 ||
	{
		tail -n 20 "$WORK/upload.log" >&2
		die "upload failed"
	}
t4=$(date +%s)
log "uploaded to moto on $MOTO_URL in $((t4 - t3)) s"

# === Prometheus, on a copy (it may rewrite its directory) ===

cp -r "$WORK/blocks" "$WORK/prom"
# Blocks of at most BLOCK_DURATION: it must not compact the week while it is timed.
start_prometheus "$WORK/prom" "$WORK" \
	--storage.tsdb.min-block-duration=2h --storage.tsdb.max-block-duration="$BLOCK_DURATION"
log "prometheus $PROM_VERSION on $PROM_URL"

# === promgate's configuration (the driver starts and stops it) ===

cat >"$WORK/promgate.toml" <<EOF
[server]
listen = "127.0.0.1:0"
watch_config = false

[query]
timeout = "10m"

[[backend]]
name = "lts"
kind = "blocks"
timeout = "120s"
sync_interval = "1h"
cache_size = "$CACHE_SIZE"

[backend.bucket]
endpoint = "$MOTO_URL"
bucket = "blocks"
path_style = true
access_key = "bench"
secret_key = "bench"
EOF
"$PROMGATE" check-config "$WORK/promgate.toml" >/dev/null || die "bad promgate.toml"
"$DATA" --list-queries >"$WORK/queries.tsv"

sleep "$SETTLE"

log "timing (promgate restarted per query; $RUNS warm runs each)"
python3 - "$WORK" "$PROMGATE" "$PROM_URL" "$PROM_PID" "$PROM_VERSION" "$END_MS" "$DAYS" \
	"$STEP_DAY" "$STEP_WEEK" "$RUNS" "$((TARGETS * 40))" "$SCRAPE_SECONDS" "$BLOCKS" \
	"$BLOCK_DURATION" <<'PY'
import json, math, os, re, signal, socket, subprocess, sys, time
import urllib.parse, urllib.request

(work, promgate, prom, prom_pid, prom_v, end_ms, days, step_day, step_week, runs,
 n_series, scrape_s, n_blocks, block_dur) = sys.argv[1:]
runs, days = int(runs), int(days)
end = int(end_ms) // 1000
ranges = [("1d", end - 86400, int(step_day)), (f"{days}d", end - days * 86400, int(step_week))]
queries = [l.rstrip("\n").split("\t", 1) for l in open(f"{work}/queries.tsv")]


def log(msg):
    print(time.strftime("%H:%M:%S"), msg, file=sys.stderr, flush=True)


def get(url, params=None):
    full = url + ("?" + urllib.parse.urlencode(params) if params else "")
    t0 = time.perf_counter()
    with urllib.request.urlopen(full, timeout=900) as r:
        body = r.read()
    return (time.perf_counter() - t0) * 1000, body


def query(base, q, start, stop, step):
    ms, body = get(base + "/api/v1/query_range",
                   {"query": q, "start": start, "end": stop, "step": step})
    doc = json.loads(body)
    if doc.get("status") != "success":
        raise RuntimeError(f"{doc.get('errorType')}: {doc.get('error')}")
    return ms, doc


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def hwm_kib(pid):
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


class Promgate:
    def __init__(self):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.logf = open(f"{work}/promgate.log", "a")
        t0 = time.perf_counter()
        self.proc = subprocess.Popen(
            [promgate, "run", "--config", f"{work}/promgate.toml",
             "--listen", f"127.0.0.1:{self.port}"],
            stdout=self.logf, stderr=subprocess.STDOUT)
        for _ in range(600):
            try:
                get(self.url + "/-/ready")
                self.ready_ms = (time.perf_counter() - t0) * 1000
                return
            except Exception:  # noqa: BLE001 - not listening yet
                if self.proc.poll() is not None:
                    raise RuntimeError("promgate exited; see promgate.log")
                time.sleep(0.05)
        raise RuntimeError("promgate is not ready after 30 s")

    def counters(self):
        _, body = get(self.url + "/metrics")
        out = {"requests": 0.0, "bytes": 0.0}
        for line in body.decode().splitlines():
            m = re.match(r'promgate_blocks_object_(requests|read_bytes)_total\{[^}]*\} (\S+)', line)
            if m:
                out["requests" if m[1] == "requests" else "bytes"] += float(m[2])
        return out

    def stop(self):
        hwm = hwm_kib(self.proc.pid)
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.logf.close()
        return hwm


def delta(a, b):
    return {k: b[k] - a[k] for k in a}


def series_of(doc):
    out = {}
    for s in doc["data"]["result"]:
        key = tuple(sorted(s["metric"].items()))
        out[key] = [(float(t), float(v)) for t, v in s.get("values", [])]
    return out


def compare(ours, theirs):
    """'ok', or what differs between two matrix answers."""
    a, b = series_of(ours), series_of(theirs)
    if len(a) != len(b):
        return f"series {len(a)}/{len(b)}"
    if a.keys() != b.keys():
        return f"labels differ ({len(a.keys() - b.keys())} series)"
    worst, points = 0.0, 0
    for k, pa in a.items():
        pb = b[k]
        if len(pa) != len(pb):
            points += abs(len(pa) - len(pb))
            continue
        for (ta, va), (tb, vb) in zip(pa, pb):
            if ta != tb:
                points += 1
            elif not (math.isnan(va) and math.isnan(vb)) and va != vb:
                worst = max(worst, abs(va - vb) / max(abs(vb), 1e-300))
    if points:
        return f"points differ ({points})"
    return "ok" if worst <= 1e-9 else f"values {worst:.1e}"


rows, opens, max_hwm = [], [], (0, "")
for rname, start, step in ranges:
    for name, q in queries:
        row = {"name": name, "range": rname, "cold": None, "warm": None, "prom": None,
               "mb": None, "req": None, "check": "-", "series": "-"}
        rows.append(row)
        pg = Promgate()
        try:
            c1 = pg.counters()
            opens.append((pg.ready_ms, c1))
            row["cold"], ours = query(pg.url, q, start, end, step)
            c2 = pg.counters()
            d = delta(c1, c2)
            row["mb"], row["req"] = d["bytes"] / 1e6, int(d["requests"])
            row["warm"] = min(query(pg.url, q, start, end, step)[0] for _ in range(runs))
        except Exception as e:  # noqa: BLE001 - a failing query is a row, not the end
            log(f"promgate {name} {rname}: {e}")
            row["check"] = f"promgate: {e}"[:60]
            ours = None
        finally:
            hwm = pg.stop()
            if hwm > max_hwm[0]:
                max_hwm = (hwm, f"{name} {rname}")
        try:
            query(prom, q, start, end, step)  # warm-up
            best, theirs = None, None
            for _ in range(runs):
                ms, theirs = query(prom, q, start, end, step)
                best = ms if best is None else min(best, ms)
            row["prom"] = best
        except Exception as e:  # noqa: BLE001
            log(f"prometheus {name} {rname}: {e}")
            theirs = None
        if ours is not None and theirs is not None:
            row["check"] = compare(ours, theirs)
            row["series"] = f"{len(ours['data']['result'])}/{len(theirs['data']['result'])}"
        log(f"{name} {rname}: cold {row['cold']} warm {row['warm']} prom {row['prom']} "
            f"{row['check']}")

# One promgate for everything: its peak RSS with every query's data in one cache.
log("one promgate for every query (peak RSS)")
pg = Promgate()
all_ms = 0.0
try:
    for rname, start, step in ranges:
        for name, q in queries:
            all_ms += query(pg.url, q, start, end, step)[0]
    totals = pg.counters()
finally:
    all_hwm = pg.stop()


def ms(x):
    return "-" if x is None else f"{x:.2f}" if x < 10 else f"{x:.1f}" if x < 1000 else f"{x:.0f}"


def ratio(a, b):
    return "-" if a is None or b is None or b == 0 else f"{a / b:.2f}x"


print(f"\n{n_series} series x {days} days at {scrape_s}s in {n_blocks} blocks of <= {block_dur}; "
      f"range queries over the last day (step {step_day}s) and {days} days (step {step_week}s); "
      f"HTTP wall times; warm and Prometheus {prom_v}: best of {runs}")
hdr = ("query", "range", "cold ms", "warm ms", "prom ms", "warm/prom", "cold MB", "cold req",
       "series pg/prom", "check")
print(f"{hdr[0]:<20} {hdr[1]:>5} {hdr[2]:>9} {hdr[3]:>9} {hdr[4]:>9} {hdr[5]:>9} "
      f"{hdr[6]:>8} {hdr[7]:>8}  {hdr[8]:<14} {hdr[9]}")
for r in rows:
    mb = "-" if r["mb"] is None else f"{r['mb']:.1f}"
    req = "-" if r["req"] is None else str(r["req"])
    print(f"{r['name']:<20} {r['range']:>5} {ms(r['cold']):>9} {ms(r['warm']):>9} "
          f"{ms(r['prom']):>9} {ratio(r['warm'], r['prom']):>9} {mb:>8} {req:>8}  "
          f"{r['series']:<14} {r['check']}")
if opens:
    o = sorted(opens, key=lambda x: x[0])
    mid = o[len(o) // 2]
    print(f"\nopen (start to /-/ready: bucket listing, meta.json, index headers), median of "
          f"{len(o)}: {ms(mid[0])} ms, {mid[1]['bytes'] / 1e3:.0f} kB in "
          f"{int(mid[1]['requests'])} requests (not in the cold columns)")
print(f"every query once in one promgate: {all_ms / 1000:.1f} s, "
      f"{totals['bytes'] / 1e6:.0f} MB in {int(totals['requests'])} requests")
results = os.environ.get("BENCH_RESULTS")
if results:
    with open(results, "a") as out:
        for r in rows:
            if r["prom"] is None:
                continue
            for kind in ("warm", "cold"):
                if r[kind] is not None:
                    out.write(f"blocks\t{r['name']} {r['range']} {kind}\tms\t{r[kind]:.3f}"
                              f"\tprometheus (local disk)\t{r['prom']:.3f}\n")
        out.write(f"blocks\tpeak RSS\tMiB\t{all_hwm / 1024:.0f}\tprometheus\t"
                  f"{hwm_kib(prom_pid) / 1024:.0f}\n")
print(f"peak RSS: promgate {all_hwm / 1024:.0f} MiB after every query in one process "
      f"(per-query processes: at most {max_hwm[0] / 1024:.0f} MiB, {max_hwm[1]}); "
      f"prometheus {hwm_kib(prom_pid) / 1024:.0f} MiB")
PY

log "done in $(($(date +%s) - BEGAN)) s"
