#!/usr/bin/env bash
# Runs Switchyard's benchmark suite on this machine and prints one line per figure, next to
# the machine's own ceilings measured in the same run (a dd to the data folder with fdatasync,
# a loopback copy) and, with --redis, Redis Streams at equal durability. Everything listens on
# 127.0.0.1 and is stopped at the end. Each run is bounded by a record count.
#
#   scripts/bench.sh [--redis] [--quick]
set -euo pipefail
cd "$(dirname "$0")/.."

with_redis=false
scale=1
for arg in "$@"; do
  case "$arg" in
    --redis) with_redis=true ;;
    --quick) scale=10 ;;
    *) echo "usage: scripts/bench.sh [--redis] [--quick]" >&2; exit 2 ;;
  esac
done

work=$(mktemp -d /tmp/switchyard-bench.XXXXXX)
port=17411
redis_port=17412
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

cargo build --release --locked -q -p switchyard-cli
bin="${CARGO_TARGET_DIR:-target}/release/switchyard"
export SWITCHYARD_SERVER=127.0.0.1:$port

echo "# machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, $(uname -r)"

echo "## ceilings"
dd if=/dev/zero of="$work/dd" bs=1M count=$((1000 / scale)) conv=fdatasync 2>&1 \
  | awk '/copied/ {print "dd 1 MiB writes + fdatasync to the data folder: " $(NF-1) " " $NF}'
rm -f "$work/dd"
dd if=/dev/zero of="$work/dd" bs=100 count=$((2000 / scale)) oflag=dsync 2>&1 \
  | awk -v n=$((2000 / scale)) '/copied/ {printf "dd 100-byte writes with O_DSYNC: %.0f us each\n", $(NF-3) / n * 1e6}'
rm -f "$work/dd"
python3 - "$scale" <<'PY'
import socket, sys, threading, time
total = (4 << 30) // int(sys.argv[1])
server = socket.socket(); server.bind(("127.0.0.1", 0)); server.listen(1)
def sink():
    conn, _ = server.accept()
    while conn.recv(1 << 20):
        pass
thread = threading.Thread(target=sink); thread.start()
client = socket.create_connection(server.getsockname())
chunk = b"\0" * (1 << 20)
start = time.perf_counter()
for _ in range(total >> 20):
    client.sendall(chunk)
client.close(); thread.join()
print(f"loopback TCP copy (python, 1 MiB sends): {total * 8 / (time.perf_counter() - start) / 1e9:.1f} Gbit/s")
PY

"$bin" serve --data-dir "$work/data" --listen "127.0.0.1:$port" --log-level warn 2>"$work/serve.log" &
server_pid=$!
pids+=($server_pid)
for _ in $(seq 100); do "$bin" topic list >/dev/null 2>&1 && break; sleep 0.1; done

run() { # name, args...
  local name=$1; shift
  local out
  out=$("$bin" bench "$@" --json)
  echo "$out" >"$work/last.json"
  python3 -c '
import json, sys
r = json.loads(sys.argv[2])
l = r["latency_us"]
rate, mb = r["records_per_sec"] / 1e6, r["mb_per_sec"]
print("%s: %.2f M records/s, %.0f MB/s, latency p50 %d p99 %d p99.9 %d max %d us"
      % (sys.argv[1], rate, mb, l["p50"], l["p99"], l["p999"], l["max"]))
' "$name" "$out"
  echo "    command: switchyard bench $*"
}

rate_of() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["records_per_sec"])' "$work/last.json"; }
rss() { awk '/^(VmRSS|VmHWM)/ {printf "%s %s %s  ", $1, $2, $3}' "/proc/$server_pid/status"; }

echo "## switchyard"
n100=$((10000000 / scale)); n1k=$((3000000 / scale))
run "produce 100 B, batch 1000, fsync interval" produce --topic p100 --count $n100 --size 100 --batch 1000 --in-flight 2
interval_rate=$(rate_of)
run "consume 100 B" consume --topic p100 --count $n100
run "produce 1 KiB, batch 1000, fsync interval" produce --topic p1k --count $n1k --size 1024 --batch 1000 --in-flight 2
echo "broker memory before consuming the backlog: $(rss)"
run "consume 1 KiB (the whole backlog, from the start)" consume --topic p1k --count $n1k
echo "broker memory after consuming the $(( n1k / 1000 )) MB backlog: $(rss)"
run "produce 100 B, batch 1000, fsync always" produce --topic a100 --fsync always --count $((5000000 / scale)) --size 100 --batch 1000 --in-flight 4
always_rate=$(rate_of)
run "produce 100 B, single-record requests, fsync always, 8 producers x 16 in flight" \
  produce --topic a1 --fsync always --count $((400000 / scale)) --size 100 --batch 1 --producers 8 --in-flight 16
run "end-to-end 100 B at 10,000 records/s" end-to-end --topic e2e --count $((100000 / scale)) --size 100 --batch 1 --rate 10000

if $with_redis; then
  echo "## redis streams (XADD, pipelined 1000)"
  if ! command -v redis-server >/dev/null; then
    apt-get install -y -q redis-server >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q redis-server >/dev/null; }
  fi
  value=$(head -c 100 /dev/zero | tr '\0' 'x')
  for fsync in everysec always; do
    mkdir -p "$work/redis-$fsync"
    redis-server --port "$redis_port" --bind 127.0.0.1 --dir "$work/redis-$fsync" --save "" \
      --appendonly yes --appendfsync "$fsync" --daemonize no >/dev/null &
    rpid=$!
    for _ in $(seq 100); do redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break; sleep 0.1; done
    redis_rate=$(redis-benchmark -p "$redis_port" -P 1000 -n $((2000000 / scale)) -q \
      XADD bench '*' v "$value" | tr '\r' '\n' | grep -E "requests per second" | tail -1 \
      | sed -E 's/.*: ([0-9.]+) requests per second.*/\1/')
    if [ "$fsync" = everysec ]; then ours=$interval_rate; policy=interval; else ours=$always_rate; policy=always; fi
    python3 -c 'import sys; r, o = float(sys.argv[1]), float(sys.argv[2]); print("redis appendfsync %s: %.2f M records/s; switchyard fsync %s is %.1fx that" % (sys.argv[3], r / 1e6, sys.argv[4], o / r))' "$redis_rate" "$ours" "$fsync" "$policy"
    echo "    command: redis-benchmark -P 1000 -n $((2000000 / scale)) XADD bench '*' v <100 B>"
    kill "$rpid"; wait "$rpid" 2>/dev/null || true
  done
fi
