#!/usr/bin/env bash
# Docker benchmarks, every runtime in the same run (run as root, after
# scripts/docker-env.sh; runsc is included when /usr/local/bin/runsc exists,
# registered as the Docker runtime "runsc"):
#   1. `docker run --rm rvisor-test/busybox true` latency (RUNS runs after 2
#      warm-ups; median and mean);
#   2. idle memory per container over IDLE idle containers (`sleep`): the
#      PSS of every host process in the container's cgroup (sentry, gofer,
#      stubs; runc: the application itself) and the memory cgroup's usage;
#   3. density: idle busybox containers started under one parent cgroup
#      with a 4 GiB memory limit, until a start fails or CAP is reached.
# Usage: scripts/bench-docker.sh [RUNS] [IDLE] [CAP]
set -euo pipefail
runs=${1:-20}
idle=${2:-10}
cap=${3:-150}
img=rvisor-test/busybox
runtimes=(runc rvisor)
if [ -x /usr/local/bin/runsc ]; then
	/usr/bin/python3 - <<'EOF'
import json, os
p = "/etc/docker/daemon.json"
d = json.load(open(p))
d.setdefault("runtimes", {})["runsc"] = {"path": "/usr/local/bin/runsc"}
json.dump(d, open(p + ".tmp", "w"), indent=2)
os.replace(p + ".tmp", p)
EOF
	kill -HUP "$(pidof dockerd)"
	sleep 1
	runtimes+=(runsc)
fi

now() { date +%s%N; }

echo "== docker run --rm $img true ($runs runs)"
for rt in "${runtimes[@]}"; do
	docker run --rm --runtime="$rt" "$img" true
	docker run --rm --runtime="$rt" "$img" true
	ts=()
	for _ in $(seq "$runs"); do
		a=$(now)
		docker run --rm --runtime="$rt" "$img" true
		b=$(now)
		ts+=($(((b - a) / 1000000)))
	done
	printf '%s\n' "${ts[@]}" | sort -n | awk -v rt="$rt" '{v[NR]=$1; s+=$1} END {printf "%-7s median %d ms, mean %.0f ms\n", rt, v[int((NR+1)/2)], s/NR}'
done

pss_of_cgroup() { # ID -> kB of PSS of the processes in its pids cgroup
	local kb=0 p v
	for p in $(cat "/sys/fs/cgroup/pids/docker/$1/cgroup.procs" 2>/dev/null); do
		v=$(awk '/^Pss:/ {print $2}' "/proc/$p/smaps_rollup" 2>/dev/null || echo 0)
		kb=$((kb + ${v:-0}))
	done
	echo "$kb"
}

echo "== idle memory per container ($idle idle containers each)"
for rt in "${runtimes[@]}"; do
	ids=()
	for i in $(seq "$idle"); do
		ids+=("$(docker run -d --runtime="$rt" "$img" sleep 3600)")
	done
	sleep 5
	pss=0
	usage=0
	for id in "${ids[@]}"; do
		pss=$((pss + $(pss_of_cgroup "$id")))
		u=$(cat "/sys/fs/cgroup/memory/docker/$id/memory.usage_in_bytes" 2>/dev/null || echo 0)
		usage=$((usage + u))
	done
	docker rm -f "${ids[@]}" >/dev/null
	awk -v rt="$rt" -v p="$pss" -v u="$usage" -v n="$idle" \
		'BEGIN {printf "%-7s PSS %.2f MiB, memory cgroup usage %.2f MiB per container\n", rt, p/n/1024, u/n/1048576}'
done

echo "== idle busybox containers within a 4 GiB memory cgroup (at most $cap)"
parent=rvisor-bench-density
for rt in "${runtimes[@]}"; do
	mkdir -p "/sys/fs/cgroup/memory/$parent"
	echo $((4 << 30)) >"/sys/fs/cgroup/memory/$parent/memory.limit_in_bytes"
	ids=()
	n=0
	while [ $n -lt "$cap" ]; do
		id=$(docker run -d --runtime="$rt" --cgroup-parent="/$parent" "$img" sleep 3600 2>/dev/null) || break
		ids+=("$id")
		# Started, and still running (not killed by the parent's limit).
		[ "$(docker inspect -f '{{.State.Running}}' "$id")" = true ] || break
		n=$((n + 1))
	done
	used=$(cat "/sys/fs/cgroup/memory/$parent/memory.usage_in_bytes")
	[ ${#ids[@]} -eq 0 ] || docker rm -f "${ids[@]}" >/dev/null
	for c in /sys/fs/cgroup/*/"$parent"; do rmdir "$c" 2>/dev/null || true; done
	more=""
	[ $n -lt "$cap" ] || more=" (the cap; the budget was not reached)"
	awk -v rt="$rt" -v n="$n" -v u="$used" -v m="$more" \
		'BEGIN {printf "%-7s %d containers%s, %.0f MiB charged\n", rt, n, m, u/1048576}'
done
