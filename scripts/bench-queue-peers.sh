#!/usr/bin/env bash
# Runs one queue workload against RabbitMQ, NATS JetStream and Switchyard on this machine and
# prints each figure, the ratios and the exact commands. The workload: producers send records
# as fast as the broker's confirms allow, competing consumers receive and ack each record;
# records/s is first send → last ack, latency is send → ack (the send time is in the payload).
#
# Each broker runs alone, on 127.0.0.1, with its data in a temporary folder on the same disk,
# and is stopped before the next starts. RabbitMQ gets its own node name, data, epmd and ports,
# so it cannot collide with a system RabbitMQ. Every run is bounded by a record count and a
# time-out.
#
#   scripts/bench-queue-peers.sh [--quick] [--skip-switchyard]
#
# Environment: PEER_BASE_PORT (default 17420; five ports from it are used), COUNT, SIZE,
# PRODUCERS, CONSUMERS, SY_BENCH_ARGS (extra `switchyard bench queue` flags), SWITCHYARD_BIN
# (a switchyard binary to use instead of building one).
set -euo pipefail
cd "$(dirname "$0")/.."

count=${COUNT:-200000}
with_switchyard=true
for arg in "$@"; do
  case "$arg" in
    --quick) count=${COUNT:-20000} ;;
    --skip-switchyard) with_switchyard=false ;;
    *) echo "usage: scripts/bench-queue-peers.sh [--quick] [--skip-switchyard]" >&2; exit 2 ;;
  esac
done
size=${SIZE:-1024}
producers=${PRODUCERS:-1}
consumers=${CONSUMERS:-4}
timeout_s=300

base=${PEER_BASE_PORT:-17420}
amqp_port=$base dist_port=$((base + 1)) epmd_port=$((base + 2))
nats_port=$((base + 3)) sy_port=$((base + 4))
for port in $amqp_port $dist_port $epmd_port $nats_port $sy_port; do
  if ss -ltnH "sport = :$port" | grep -q .; then
    echo "port $port on this machine is taken; set PEER_BASE_PORT to a free range" >&2
    exit 1
  fi
done

# Brokers, when missing: Debian's packages.
if ! command -v nats-server >/dev/null || [ ! -x /usr/lib/rabbitmq/bin/rabbitmq-server ]; then
  apt-get install -y rabbitmq-server nats-server >/dev/null ||
    { apt-get update >/dev/null && apt-get install -y rabbitmq-server nats-server >/dev/null; }
fi

work=$(mktemp -d /tmp/switchyard-peers.XXXXXX)
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
if $with_switchyard && [ -z "${SWITCHYARD_BIN:-}" ]; then
  cargo build --release --locked -q -p switchyard-cli
fi
sy=${SWITCHYARD_BIN:-${CARGO_TARGET_DIR:-target}/release/switchyard}

echo "# machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB; load: $(uptime | sed 's/.*load average: //')"
echo "# workload: $count records of $size bytes, $producers producer(s), $consumers consumer(s)"
results=()
commands=()

# RabbitMQ: its own node, epmd, config and data; the AMQP and distribution ports on loopback.
rabbit="$work/rabbitmq"
mkdir -p "$rabbit/home" "$rabbit/mnesia" "$rabbit/log"
echo "[]." >"$rabbit/enabled_plugins"
: >"$rabbit/rabbitmq-env.conf"
cat >"$rabbit/rabbitmq.conf" <<EOF
listeners.tcp.default = 127.0.0.1:$amqp_port
loopback_users.guest = true
log.console = false
log.file.level = warning
EOF
start "$work/epmd.log" epmd -port "$epmd_port" -address 127.0.0.1
epmd_group=$started
start "$work/rabbitmq.log" env HOME="$rabbit/home" \
  RABBITMQ_NODENAME=peerbench@localhost RABBITMQ_CONF_ENV_FILE="$rabbit/rabbitmq-env.conf" \
  RABBITMQ_CONFIG_FILE="$rabbit/rabbitmq.conf" RABBITMQ_ENABLED_PLUGINS_FILE="$rabbit/enabled_plugins" \
  RABBITMQ_MNESIA_BASE="$rabbit/mnesia" RABBITMQ_LOG_BASE="$rabbit/log" \
  RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 RABBITMQ_NODE_PORT="$amqp_port" RABBITMQ_DIST_PORT="$dist_port" \
  ERL_EPMD_ADDRESS=127.0.0.1 ERL_EPMD_PORT="$epmd_port" \
  RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}" \
  /usr/lib/rabbitmq/bin/rabbitmq-server
rabbit_group=$started
wait_port "$amqp_port" rabbitmq
command=("$peer" --system rabbitmq --url "amqp://guest:guest@127.0.0.1:$amqp_port/%2f"
  --count "$count" --size "$size" --producers "$producers" --consumers "$consumers" --timeout "$timeout_s")
commands+=("${command[*]}")
echo "# rabbitmq $(dpkg-query -W -f '${Version}' rabbitmq-server)"
results+=("$("${command[@]}")")
echo "${results[-1]}"
stop_group "$rabbit_group"
stop_group "$epmd_group"

# NATS JetStream: file storage in the temporary folder.
start "$work/nats.log" nats-server -js -a 127.0.0.1 -p "$nats_port" -sd "$work/nats"
nats_group=$started
wait_port "$nats_port" nats
command=("$peer" --system jetstream --url "nats://127.0.0.1:$nats_port"
  --count "$count" --size "$size" --producers "$producers" --consumers "$consumers" --timeout "$timeout_s")
commands+=("${command[*]}")
echo "# jetstream $(nats-server --version)"
results+=("$("${command[@]}")")
echo "${results[-1]}"
stop_group "$nats_group"

# Switchyard: a release server on a fresh data folder per configuration. `single` is the
# peers' pattern (one record per send, 256 sends in flight, one ack per record); `batched` is
# Switchyard's own (100 records per send and per ack). Fsync `interval` (the default) confirms
# before the fsync, as JetStream does; `always` confirms after it, as RabbitMQ does. Single
# sends with fsync always cost an fsync each, so that row runs at most 20,000 records.
single=(--batch 1 --in-flight 256 --receive-batch 100 --ack each)
batched=(--batch 100 --in-flight 8 --receive-batch 100 --ack batch)
sy_run() {
  local label=$1 fsync=$2 records=$3
  shift 3
  start "$work/switchyard.log" "$sy" serve --data-dir "$work/switchyard-$label" \
    --listen "127.0.0.1:$sy_port" --default-fsync "$fsync"
  local group=$started
  wait_port "$sy_port" switchyard
  # shellcheck disable=SC2206
  command=("$sy" --server "127.0.0.1:$sy_port" --json bench queue --count "$records" --size "$size"
    --producers "$producers" --consumers "$consumers" "$@" ${SY_BENCH_ARGS:-})
  commands+=("# server: $sy serve --default-fsync $fsync" "${command[*]}")
  echo "# switchyard $label"
  labels+=("switchyard $label")
  results+=("$(timeout "$timeout_s" "${command[@]}")")
  echo "${results[-1]}"
  stop_group "$group"
}
labels=(rabbitmq jetstream)
if $with_switchyard; then
  echo "# switchyard $sy, tree at $(git rev-parse --short HEAD)$(git diff --quiet || echo ' + uncommitted changes')"
  sy_run "single/interval" interval "$count" "${single[@]}"
  sy_run "batched/interval" interval "$count" "${batched[@]}"
  sy_run "single/always" always $((count < 20000 ? count : 20000)) "${single[@]}"
  sy_run "batched/always" always "$count" "${batched[@]}"
fi

echo "## summary"
printf '%s\n' "${results[@]}" >"$work/results.jsonl"
printf '%s\n' "${labels[@]}" >"$work/labels.txt"
python3 - "$work/results.jsonl" "$work/labels.txt" <<'PY'
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
labels = [line.strip() for line in open(sys.argv[2]) if line.strip()]
for label, row in zip(labels, rows):
    lat, conf = row["latency_us"], row.get("confirm_latency_us", {})
    print(f"{label:27} {row['records']:>7} records {row['records_per_sec']:>8.0f}/s {row['mb_per_sec']:>6.1f} MB/s"
          f"  send→ack µs p50 {lat['p50']} p99 {lat['p99']} max {lat['max']}"
          f"  confirm µs p50 {conf.get('p50', '-')} p99 {conf.get('p99', '-')}")
rabbit, jet = rows[0], rows[1]
for label, row in zip(labels[2:], rows[2:]):
    rate = lambda r: r["records_per_sec"]
    p50 = lambda r: r["latency_us"]["p50"]
    print(f"{label:27} / rabbitmq: {rate(row) / rate(rabbit):6.2f}x records/s, {p50(row) / p50(rabbit):6.2f}x p50 latency;"
          f"  / jetstream: {rate(row) / rate(jet):6.2f}x records/s, {p50(row) / p50(jet):6.2f}x p50 latency")
PY
echo "## commands"
printf '%s\n' "${commands[@]}"
