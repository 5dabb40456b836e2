#!/usr/bin/env bash
# Window stage benchmark: N events (default 10,000,000) over K keys (default
# 100,000) in 1-minute tumbling windows with count, sum and p99. Prints
# events/s and peak RSS. Usage: benches/windows.sh [N] [K]
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-10000000}
k=${2:-100000}
input=target/bench/windows-$n-$k.ndjson
mkdir -p target/bench
if [ ! -f "$input" ]; then
  # Event times advance 0-11 ms at a time (about 10,000 events a minute),
  # keys drawn uniformly, values 0-1000 with two decimals.
  awk -v n="$n" -v k="$k" 'BEGIN { srand(1); t = 1762070400000;
    for (i = 0; i < n; i++) { t += int(rand() * 12);
      printf("{\"ts\":%.0f,\"key\":\"k%d\",\"v\":%.2f}\n", t, int(rand() * k), rand() * 1000) } }' > "$input.tmp"
  mv "$input.tmp" "$input"
fi
cargo build --release -q
bytes=$(stat -c %s "$input")
echo "input: $input ($n events, $k keys, $bytes bytes); $(nproc) CPUs; $(date -u +%F)"
/usr/bin/time -f "%e %M" -o target/bench/windows.time \
  target/release/evq --stats=json --window tumbling:1m --time .ts --key .key \
  --agg n=count --agg 'total=sum(.v)' --agg 'p99=p99(.v)' "$input" \
  > target/bench/windows.out 2> target/bench/windows.stats
read -r secs rss_kb < target/bench/windows.time
python3 - "$secs" "$rss_kb" "$n" <<'PY'
import json, sys
secs, rss_kb, n = float(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
stats = json.loads(open("target/bench/windows.stats").read().strip().splitlines()[-1])
w = stats["stages"][0]
print(f"wall {secs:.2f} s, {n / secs:,.0f} events/s, peak RSS {rss_kb / 1024:.1f} MiB, "
      f"{w['windows_emitted']:,} results, at most {w['windows_open']:,} window x key states open")
PY
