#!/usr/bin/env bash
# rvisor's whole test suite, from a fresh Debian 12 machine (run as root).
# Installs what the tests need, then: formatting, lints, unit and
# integration tests (the compatibility suite runs every program natively and
# under rvisor), and bounded fuzz runs of the ELF loader and the gofer
# protocol's decoders.
# Usage: ./scripts/test.sh   (FUZZ_SECONDS=N to change each fuzz budget)
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*"; }

step "packages"
need=()
command -v gcc >/dev/null || need+=(gcc)
command -v musl-gcc >/dev/null || need+=(musl-tools)
[ -x /bin/busybox ] || need+=(busybox-static)
command -v unshare >/dev/null || need+=(util-linux)
command -v hostname >/dev/null || need+=(hostname)
# The OCI lifecycle tests run every case against runc too.
command -v runc >/dev/null || need+=(runc)
# The workload tests' real programs.
command -v make >/dev/null || need+=(make)
[ -x /usr/bin/python3 ] || need+=(python3)
if [ ${#need[@]} -gt 0 ]; then
	export DEBIAN_FRONTEND=noninteractive
	apt-get install -y -qq "${need[@]}" >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq "${need[@]}"; }
fi
command -v cargo >/dev/null || { echo "cargo (rustup toolchain) is required" >&2; exit 1; }

step "format and lints"
cargo fmt --check
cargo clippy --all-targets -- -D warnings

step "build"
cargo build -p rvisor
cargo bench --no-run -p rvisor-benches

step "docker and containerd"
# dockerd and containerd with rvisor registered, and the test images
# (tests/docker.rs compares every case with runc).
./scripts/docker-env.sh target/x86_64-unknown-linux-gnu/debug/rvisor

step "tests"
RVISOR_DOCKER_TESTS=1 cargo test --workspace

step "tests on the ptrace platform"
# The platform tests, the compatibility suite, the workloads, the CLI, the
# OCI lifecycle, confinement and the passthrough proof again, with
# --platform=ptrace (the Docker suite runs on the default, systrap, only).
RVISOR_PLATFORM=ptrace cargo test -p rvisor-platform --test platform
RVISOR_PLATFORM=ptrace cargo test -p rvisor-tests --test compat --test workloads --test cli \
	--test oci --test confinement --test passthrough

step "fuzz: ELF loader (${FUZZ_SECONDS:-20}s)"
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
corpus=fuzz/corpus/elf_loader
mkdir -p "$corpus"
cp target/x86_64-unknown-linux-gnu/debug/compat-programs/*-glibc "$corpus/" 2>/dev/null || true
cp target/x86_64-unknown-linux-gnu/debug/compat-programs/*-musl "$corpus/" 2>/dev/null || true
(cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run elf_loader "corpus/elf_loader" -- \
	-max_total_time="${FUZZ_SECONDS:-20}" -rss_limit_mb=4096 -print_final_stats=1 2>&1 | tail -n 8)

step "fuzz: gofer protocol (${FUZZ_SECONDS:-20}s)"
mkdir -p fuzz/corpus/gofer_protocol
(cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run gofer_protocol "corpus/gofer_protocol" -- \
	-max_total_time="${FUZZ_SECONDS:-20}" -rss_limit_mb=4096 -print_final_stats=1 2>&1 | tail -n 8)

step "all passed"
