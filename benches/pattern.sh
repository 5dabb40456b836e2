#!/usr/bin/env bash
# The pattern stage's benchmark (issue 14): `fail{3,} ok` within 5 minutes
# over 1,000,000 generated login events of 100,000 users, side by side in
# one run with a group-by chain (count and sum per user) on the same file.
# Prints wall time, events/s and peak RSS of each, best of RUNS.
#
#   benches/pattern.sh [EVENTS] [USERS] [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
events=${1:-1000000}
users=${2:-100000}
runs=${3:-3}
dir=target/bench/pattern
mkdir -p "$dir"
data="$dir/logins-$events-$users.ndjson"
if [ ! -s "$data" ]; then
  python3 - "$events" "$users" "$data" <<'PY'
import random, sys
n, users, path = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
rng = random.Random(14)
t = 1_793_606_400_000  # 2026-11-02T08:00:00Z in ms
with open(path, "w") as f:
    for i in range(n):
        t += rng.randrange(0, 60)  # about 35 events/s over ~8 hours
        user = rng.randrange(users)
        ok = rng.random() < 0.3
        f.write('{"ts":%d,"user":"u%05d","ok":%s,"ip":"10.0.%d.%d","amount":%d}\n'
                % (t, user, "true" if ok else "false", user % 256, i % 256, i % 1000))
PY
fi
cargo build --release -q
evq=target/release/evq
bytes=$(stat -c %s "$data")
echo "input: $events events, $users users, $bytes bytes"
run() { # name, args...
  local name=$1; shift
  local best=""; local rss=""; local rows=""
  for _ in $(seq "$runs"); do
    local out
    out=$( { /usr/bin/time -f "%e %M" "$evq" "$@" "$data" > "$dir/$name.out"; } 2>&1 | tail -1)
    local s=${out% *}; local kb=${out#* }
    if [ -z "$best" ] || awk "BEGIN{exit !($s < $best)}"; then best=$s; rss=$kb; fi
  done
  rows=$(wc -l < "$dir/$name.out")
  printf '%-10s %8.2f s %10.0f events/s %6d MiB %9d rows\n' "$name" "$best" \
    "$(awk "BEGIN{print $events / $best}")" $((rss / 1024)) "$rows"
  echo "$best"
}
group=$(run group-by --key .user --agg n=count --agg 'total=sum(.amount)' | tee /dev/stderr | tail -1)
pattern=$(run pattern --def 'fail=.ok == false' --def 'ok=.ok' --match 'fail{3,} ok' \
  --key .user --time .ts --within 5m | tee /dev/stderr | tail -1)
echo "pattern speed / group-by speed: $(awk "BEGIN{printf \"%.2f\", $group / $pattern}")"
