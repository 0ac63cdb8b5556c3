#!/usr/bin/env bash
# Runs one ephemeral pub/sub workload against NATS core (no JetStream) and Switchyard on this
# machine and prints each figure, the ratios and the exact commands:
#
# - throughput: one publisher publishes COUNT records of SIZE bytes as fast as it can, one
#   subscriber (SUBSCRIBERS) counts them; records/s delivered, publish start → last record;
# - latency: the same at 1,000 records/s (LAT_COUNT records); publish → receive, from the
#   send time in each payload;
# - Switchyard only: request-reply round trips at 10,000/s (`switchyard bench request`).
#
# Each broker runs alone on 127.0.0.1 and is stopped before the next starts. Every run is
# bounded by a record count and a time-out.
#
#   scripts/bench-pubsub-peers.sh [--quick]
#
# Environment: PEER_BASE_PORT (default 17430; two ports from it are used), COUNT, LAT_COUNT,
# REQ_COUNT, SIZE, SUBSCRIBERS, SWITCHYARD_BIN (a switchyard binary to use instead of
# building one).
set -euo pipefail
cd "$(dirname "$0")/.."

count=${COUNT:-1000000} lat_count=${LAT_COUNT:-10000} req_count=${REQ_COUNT:-100000}
for arg in "$@"; do
  case "$arg" in
    --quick) count=${COUNT:-100000} lat_count=${LAT_COUNT:-2000} req_count=${REQ_COUNT:-20000} ;;
    *) echo "usage: scripts/bench-pubsub-peers.sh [--quick]" >&2; exit 2 ;;
  esac
done
size=${SIZE:-100}
subscribers=${SUBSCRIBERS:-1}
rate=1000 req_rate=10000
timeout_s=120

base=${PEER_BASE_PORT:-17430}
nats_port=$base sy_port=$((base + 1))
for port in $nats_port $sy_port; do
  if ss -ltnH "sport = :$port" | grep -q .; then
    echo "port $port on this machine is taken; set PEER_BASE_PORT to a free range" >&2
    exit 1
  fi
done

# The broker, when missing: Debian's package.
if ! command -v nats-server >/dev/null; then
  apt-get install -y nats-server >/dev/null ||
    { apt-get update >/dev/null && apt-get install -y nats-server >/dev/null; }
fi

work=$(mktemp -d /tmp/switchyard-pubsub-peers.XXXXXX)
groups=()   # process groups this script started, each stopped at the end
stop_group() {
  local pgid=$1
  kill -TERM -- "-$pgid" 2>/dev/null || return 0
  for _ in $(seq 1 300); do
    kill -0 -- "-$pgid" 2>/dev/null || return 0
    sleep 0.1
  done
  kill -KILL -- "-$pgid" 2>/dev/null || true
}
cleanup() {
  for pgid in "${groups[@]}"; do stop_group "$pgid"; done
  rm -rf "$work"
}
trap cleanup EXIT

# Starts a command in its own process group (so it can be stopped whole); sets `started`.
start() {
  local log=$1
  shift
  setsid "$@" >"$log" 2>&1 &
  started=$!
  groups+=("$started")
}
wait_port() {
  local port=$1 what=$2
  for _ in $(seq 1 600); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "$what did not listen on 127.0.0.1:$port within 60 s; its log:" >&2
  tail -30 "$work/$what.log" >&2
  exit 1
}

echo "# building"
cargo build --release --locked -q --manifest-path bench/peers/Cargo.toml
peer=bench/peers/target/release/peer-bench
if [ -z "${SWITCHYARD_BIN:-}" ]; then
  cargo build --release --locked -q -p switchyard-cli
fi
sy=${SWITCHYARD_BIN:-${CARGO_TARGET_DIR:-target}/release/switchyard}

echo "# machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB; load: $(uptime | sed 's/.*load average: //')"
echo "# workload: $count records of $size bytes to $subscribers subscriber(s); latency at $rate/s ($lat_count records); request-reply at $req_rate/s ($req_count)"
labels=() results=() commands=()
measure() {
  local label=$1
  shift
  commands+=("$*")
  labels+=("$label")
  echo "# $label"
  results+=("$(timeout "$timeout_s" "$@")")
  echo "${results[-1]}"
}

# NATS core: no JetStream, nothing stored.
start "$work/nats.log" nats-server -a 127.0.0.1 -p "$nats_port"
nats_group=$started
wait_port "$nats_port" nats
echo "# nats $(nats-server --version)"
nats=("$peer" --system nats --mode pubsub --url "nats://127.0.0.1:$nats_port" --size "$size"
  --subscribers "$subscribers" --timeout $((timeout_s - 10)))
measure "nats throughput" "${nats[@]}" --count "$count"
measure "nats latency" "${nats[@]}" --count "$lat_count" --rate "$rate"
stop_group "$nats_group"

# Switchyard: a release server on a fresh data folder (pub/sub stores nothing).
start "$work/switchyard.log" "$sy" serve --data-dir "$work/switchyard-data" --listen "127.0.0.1:$sy_port"
sy_group=$started
wait_port "$sy_port" switchyard
echo "# switchyard $sy, tree at $(git rev-parse --short HEAD)$(git diff --quiet || echo ' + uncommitted changes')"
commands+=("# server: $sy serve --listen 127.0.0.1:$sy_port")
sy_bench=("$sy" --server "127.0.0.1:$sy_port" --json bench)
measure "switchyard throughput" "${sy_bench[@]}" pubsub --size "$size" --subscribers "$subscribers" --count "$count"
measure "switchyard latency" "${sy_bench[@]}" pubsub --size "$size" --subscribers "$subscribers" --count "$lat_count" --rate "$rate"
measure "switchyard request" "${sy_bench[@]}" request --size "$size" --count "$req_count" --rate "$req_rate"
stop_group "$sy_group"

echo "## summary"
printf '%s\n' "${results[@]}" >"$work/results.jsonl"
printf '%s\n' "${labels[@]}" >"$work/labels.txt"
python3 - "$work/results.jsonl" "$work/labels.txt" "$count" "$subscribers" <<'PY'
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
labels = [line.strip() for line in open(sys.argv[2]) if line.strip()]
expected = int(sys.argv[3]) * int(sys.argv[4])
by = dict(zip(labels, rows))
for label, row in by.items():
    lat = row["latency_us"]
    print(f"{label:22} {row['records']:>8} records {row['records_per_sec']:>10.0f}/s {row['mb_per_sec']:>6.1f} MB/s"
          f"  µs p50 {lat['p50']} p90 {lat['p90']} p99 {lat['p99']} p99.9 {lat['p999']} max {lat['max']}")
for system in ("nats", "switchyard"):
    got = by[f"{system} throughput"]["records"]
    if got < expected:
        print(f"note: {system} delivered {got} of {expected} records in the throughput run")
sy_t, nats_t = by["switchyard throughput"], by["nats throughput"]
sy_l, nats_l = by["switchyard latency"], by["nats latency"]
print(f"switchyard / nats: {sy_t['records_per_sec'] / nats_t['records_per_sec']:.2f}x records/s;"
      f" at 1,000/s {sy_l['latency_us']['p50'] / nats_l['latency_us']['p50']:.2f}x p50,"
      f" {sy_l['latency_us']['p99'] / nats_l['latency_us']['p99']:.2f}x p99 latency")
req = by["switchyard request"]["latency_us"]
print(f"switchyard request-reply at 10,000/s: p50 {req['p50']} µs, p99 {req['p99']} µs"
      f" ({'under' if req['p99'] < 1000 else 'over'} the 1 ms p99 target)")
PY
echo "## commands"
printf '%s\n' "${commands[@]}"
