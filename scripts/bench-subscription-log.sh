#!/usr/bin/env bash
# What a subscription on patterns costs producers: the same produce benchmark to a topic no
# subscription log reads, to one that a log copies every record of, and to one whose log
# filters every record out, alternating, ROUNDS times, in one broker. Prints each figure and
# the ratio to the plain topic of the same round.
#
#   scripts/bench-subscription-log.sh
#
# Environment: PORT (default 17461), COUNT (records per run, default 2000000), ROUNDS
# (default 2), SWITCHYARD_BIN (a switchyard binary to use instead of building one).
set -euo pipefail
cd "$(dirname "$0")/.."

port=${PORT:-17461} count=${COUNT:-2000000} rounds=${ROUNDS:-2}
if [ -z "${SWITCHYARD_BIN:-}" ]; then
  cargo build --release --locked -q -p switchyard-cli
fi
bin=${SWITCHYARD_BIN:-${CARGO_TARGET_DIR:-target}/release/switchyard}
data=$(mktemp -d)
"$bin" serve --listen "127.0.0.1:$port" --data-dir "$data" --log-format json >"$data.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$data" "$data.log"' EXIT
sy() { timeout 300 "$bin" --server "127.0.0.1:$port" "$@"; }
for _ in $(seq 50); do sy topic list >/dev/null 2>&1 && break; sleep 0.1; done

sy sub create 'copy.>' all >/dev/null
sy sub create 'half.>' half --filter 'parity = even' >/dev/null
rate() {
  sy --json bench produce --topic "$1" --count "$count" --size 100 --batch 1000 \
    --in-flight 2 "${@:2}" | python3 -c 'import json,sys; print(int(json.load(sys.stdin)["records_per_sec"]))'
}
for round in $(seq "$rounds"); do
  plain=$(rate "plain.$round")
  copied=$(rate "copy.$round")
  # The benchmark's records carry no headers, so the filter passes none: this measures
  # reading back and filtering without the copy.
  filtered=$(rate "half.$round")
  python3 - "$round" "$plain" "$copied" "$filtered" <<'PY'
import sys
r, plain, copied, filtered = sys.argv[1], *map(int, sys.argv[2:])
print(f"round {r}: plain {plain/1e6:.2f} M/s; copied to a log {copied/1e6:.2f} M/s "
      f"({copied/plain:.2f}x); filtered out {filtered/1e6:.2f} M/s ({filtered/plain:.2f}x)")
PY
done
echo "command per run: switchyard bench produce --topic TOPIC --count $count --size 100 --batch 1000 --in-flight 2"
