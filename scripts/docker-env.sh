#!/usr/bin/env bash
# The Docker/containerd test environment (run as root): installs Debian's
# docker.io, containerd and runc when missing, registers rvisor as a Docker
# runtime in /etc/docker/daemon.json (keeping any other keys), starts
# containerd and dockerd when they are not running, and builds the test
# images locally (no registry): rvisor-test/busybox (busybox-static) and
# rvisor-test/python (Debian minbase with python3, by debootstrap from the
# configured Debian mirror; cached under /var/cache/rvisor-test).
# Usage: scripts/docker-env.sh RVISOR_BINARY
set -euo pipefail
rvisor=$(readlink -f "${1:?usage: docker-env.sh RVISOR_BINARY}")
log=/var/log/rvisor-test
mkdir -p "$log"

need=()
[ -x /usr/sbin/dockerd ] || need+=(docker.io)
command -v containerd >/dev/null || need+=(containerd)
command -v runc >/dev/null || need+=(runc)
command -v debootstrap >/dev/null || need+=(debootstrap)
[ -x /bin/busybox ] || need+=(busybox-static)
if [ ${#need[@]} -gt 0 ]; then
	export DEBIAN_FRONTEND=noninteractive
	apt-get install -y -qq "${need[@]}" >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq "${need[@]}"; }
fi

# rvisor as a runtime, beside whatever the file already says.
mkdir -p /etc/docker
/usr/bin/python3 - "$rvisor" <<'EOF'
import json, os, sys
p = "/etc/docker/daemon.json"
d = {}
if os.path.exists(p) and os.path.getsize(p) > 0:
    with open(p) as f:
        d = json.load(f)
d.setdefault("runtimes", {})["rvisor"] = {"path": sys.argv[1]}
with open(p + ".tmp", "w") as f:
    json.dump(d, f, indent=2)
os.replace(p + ".tmp", p)
EOF

wait_for() { # SECONDS COMMAND...
	local n=$(($1 * 10)); shift
	until "$@" >/dev/null 2>&1; do
		n=$((n - 1))
		[ $n -gt 0 ] || return 1
		sleep 0.1
	done
}

if ! ctr version >/dev/null 2>&1; then
	(setsid containerd >"$log/containerd.log" 2>&1 &)
	wait_for 30 ctr version || { tail -n 30 "$log/containerd.log" >&2; exit 1; }
fi
if ! docker info >/dev/null 2>&1; then
	(setsid dockerd --containerd=/run/containerd/containerd.sock >"$log/dockerd.log" 2>&1 &)
	wait_for 60 docker info || { tail -n 30 "$log/dockerd.log" >&2; exit 1; }
else
	# Running already: it rereads daemon.json (runtimes) on SIGHUP.
	kill -HUP "$(pidof dockerd)"
	sleep 1
fi
docker info --format '{{json .Runtimes}}' | grep -q '"rvisor"' || { echo "dockerd did not register rvisor" >&2; exit 1; }

# The images, built once.
cache=/var/cache/rvisor-test
mkdir -p "$cache"
if ! docker image inspect rvisor-test/busybox >/dev/null 2>&1; then
	tmp=$(mktemp -d)
	mkdir -p "$tmp"/{bin,etc,tmp,root,home/user}
	cp /bin/busybox "$tmp/bin/busybox"
	for a in $(/bin/busybox --list); do
		[ "$a" = busybox ] || ln -s busybox "$tmp/bin/$a"
	done
	printf 'root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000:user:/home/user:/bin/sh\n' >"$tmp/etc/passwd"
	printf 'root:x:0:\nuser:x:1000:\n' >"$tmp/etc/group"
	chmod 1777 "$tmp/tmp"
	chown 1000:1000 "$tmp/home/user"
	tar -C "$tmp" -c . | docker import -c 'ENV PATH=/bin' -c 'CMD ["sh"]' - rvisor-test/busybox >/dev/null
	rm -rf "$tmp"
fi
if ! docker image inspect rvisor-test/python >/dev/null 2>&1; then
	if [ ! -s "$cache/python.tar" ]; then
		mirror=$(grep -rhoE 'https?://[^ ]+/debian/?$|https?://[^ ]+/debian ' /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null | head -n1 | tr -d ' ' || true)
		[ -n "$mirror" ] || mirror=http://deb.debian.org/debian
		root=$(mktemp -d)
		debootstrap --variant=minbase --include=python3-minimal bookworm "$root" "$mirror" >"$log/debootstrap.log" 2>&1 ||
			{ tail -n 30 "$log/debootstrap.log" >&2; exit 1; }
		rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
		tar -C "$root" -cf "$cache/python.tar" .
		rm -rf "$root"
	fi
	docker import -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' -c 'CMD ["bash"]' \
		"$cache/python.tar" rvisor-test/python >/dev/null
fi
# containerd's own copy of the busybox image, for `ctr run`.
if ! ctr -n rvisor-test images ls -q | grep -qx docker.io/rvisor-test/busybox:latest; then
	docker save rvisor-test/busybox | ctr -n rvisor-test images import - >/dev/null
fi
echo "docker: $(docker version --format '{{.Server.Version}}'), containerd: $(ctr version 2>/dev/null | awk '/Version/ {print $2; exit}'), runtime rvisor: $rvisor"
