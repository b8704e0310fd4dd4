#!/bin/sh
# Router binary sizes: the lean daemon (-tags headless: no
# screen, no GeoIP downloader, no --enable-tracking, no websockets, so no net/http; compiled
# with scripts/lean-gcflags) and the full build, stripped and after xz -9
# (what a binary costs in a squashfs), for the router targets.
#
#   scripts/sizes.sh           every target, lean and full (for docs/BENCHMARKS.md)
#   scripts/sizes.sh --check   CI: the lean mipsle daemon only; fails when it
#                              grew more than 5 % over scripts/lean-size (update
#                              that file in the same commit when growth is wanted)
#                              or past the router target, 8,000,000 bytes
set -eu
cd "$(dirname "$0")/.."
lean_tags=headless
lean_gcflags=$(grep -v '^#' scripts/lean-gcflags)
target=8000000 # the mipsle daemon's ceiling, stripped (docs/BENCHMARKS.md)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

build() { # build NAME GOARCH GOARM TAGS (lean: with its gcflags)
	# shellcheck disable=SC2086 # one argument a line
	CGO_ENABLED=0 GOOS=linux GOARCH=$2 GOARM=$3 GOMIPS=softfloat \
		go build -trimpath -tags "$4" ${4:+$lean_gcflags} -ldflags "-s -w" -o "$out/$1" ./cmd/flowtop
	printf '%-8s %-5s %10d %10d\n' "$2${3:+v$3}" "$([ -n "$4" ] && echo lean || echo full)" \
		"$(stat -c %s "$out/$1")" "$(xz -9 -c "$out/$1" | wc -c)"
}

printf '%-8s %-5s %10s %10s\n' target build stripped xz-9
if [ "${1:-}" = --check ]; then
	build mipsle-lean mipsle "" "$lean_tags"
	want=$(cat scripts/lean-size)
	got=$(stat -c %s "$out/mipsle-lean")
	limit=$((want + want / 20))
	if [ "$got" -gt "$limit" ]; then
		echo "the lean mipsle daemon is $got bytes, over $limit (scripts/lean-size $want + 5 %)" >&2
		exit 1
	fi
	if [ "$got" -gt "$target" ]; then
		echo "the lean mipsle daemon is $got bytes, over the router target of $target (16 MB of flash)" >&2
		exit 1
	fi
	echo "lean mipsle daemon: $got bytes, within 5 % of $want and under $target"
	exit 0
fi
for t in mipsle mips arm:7 arm64; do
	arch=${t%%:*}
	arm=""
	[ "$arch" != "$t" ] && arm=${t#*:}
	build "$arch-lean" "$arch" "$arm" "$lean_tags"
	build "$arch-full" "$arch" "$arm" ""
done
