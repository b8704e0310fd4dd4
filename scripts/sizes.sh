#!/bin/sh
# Router binary sizes: the lean daemon (-tags headless) and the full build,
# stripped and after xz -9 (what a binary costs in a squashfs), for the
# router targets. With --check, fails when the lean mipsle daemon grew by
# more than 5 % over the size recorded in scripts/lean-size (update that
# file, in the same commit, when growth is wanted).
set -eu
cd "$(dirname "$0")/.."
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

build() { # build NAME GOARCH GOARM TAGS
	CGO_ENABLED=0 GOOS=linux GOARCH=$2 GOARM=$3 GOMIPS=softfloat \
		go build -trimpath -tags "$4" -ldflags "-s -w" -o "$out/$1" ./cmd/flowtop
	printf '%-8s %-6s %10d %10d\n' "$2${3:+v$3}" "${4:-full}" \
		"$(stat -c %s "$out/$1")" "$(xz -9 -c "$out/$1" | wc -c)"
}

printf '%-8s %-6s %10s %10s\n' target build stripped xz-9
for t in mipsle mips arm:7 arm64; do
	arch=${t%%:*}
	arm=""
	[ "$arch" != "$t" ] && arm=${t#*:}
	build "$arch-lean" "$arch" "$arm" headless
	build "$arch-full" "$arch" "$arm" ""
done

if [ "${1:-}" = --check ]; then
	want=$(cat scripts/lean-size)
	got=$(stat -c %s "$out/mipsle-lean")
	limit=$((want + want / 20))
	if [ "$got" -gt "$limit" ]; then
		echo "lean mipsle daemon is $got bytes, over $limit (scripts/lean-size $want + 5 %)" >&2
		exit 1
	fi
	echo "lean mipsle daemon $got bytes, within 5 % of $want"
fi
