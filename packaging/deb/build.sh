#!/bin/sh
# Builds dist/flowtop_VERSION_ARCH.deb with dpkg-deb: the static binary,
# the man page, /etc/flowtop/*.conf and /etc/default/flowtop as conffiles,
# and the systemd unit (not enabled: systemctl enable --now flowtop).
# Usage: packaging/deb/build.sh VERSION [GOARCH]
set -eu
version=$(echo "${1:?usage: build.sh VERSION [GOARCH]}" | sed 's/^v//; s/[^A-Za-z0-9.+~-]/./g')
case "$version" in [0-9]*) ;; *) version="0.0.0~$version" ;; esac
goarch=${2:-$(go env GOARCH)}
case "$goarch" in
arm) debarch=armhf ;;
386) debarch=i386 ;;
mipsle) debarch=mipsel ;;
*) debarch=$goarch ;;
esac

cd "$(dirname "$0")/../.."
root=$(mktemp -d)
chmod 0755 "$root"
trap 'rm -rf "$root"' EXIT

CGO_ENABLED=0 GOOS=linux GOARCH=$goarch GOARM=7 GOMIPS=softfloat \
	go build -trimpath -ldflags "-s -w -X main.version=$version" -o "$root/usr/sbin/flowtop" ./cmd/flowtop
install -d "$root/usr/share/man/man8" "$root/etc/flowtop" "$root/etc/default" \
	"$root/lib/systemd/system" "$root/usr/share/doc/flowtop" "$root/DEBIAN"
gzip -9n -c docs/flowtop.8 >"$root/usr/share/man/man8/flowtop.8.gz"
for f in etc/*.conf; do install -m 0644 "$f" "$root/etc/flowtop/"; done
install -m 0644 packaging/deb/default "$root/etc/default/flowtop"
sed 's|/usr/bin/flowtop|/usr/sbin/flowtop|' etc/flowtop.service >"$root/lib/systemd/system/flowtop.service"
for f in README.md docs/mqtt.md docs/snapshot.md; do gzip -9n -c "$f" >"$root/usr/share/doc/flowtop/$(basename "$f").gz"; done

(cd "$root" && find etc -type f | sed 's|^|/|' | sort) >"$root/DEBIAN/conffiles"
size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
cat >"$root/DEBIAN/control" <<CONTROL
Package: flowtop
Version: $version
Architecture: $debarch
Maintainer: flowtop developers <flowtop@localhost>
Installed-Size: $size
Section: net
Priority: optional
Homepage: https://github.com/flowtop/flowtop
Description: top-like live view of the kernel's connection tracking table
 flowtop reads netfilter conntrack over netlink and shows every connection
 with its rates, service, reverse DNS, GeoIP and owning process, or runs
 headless and exports the flows as JSON, over MQTT and more.
CONTROL

mkdir -p dist
out="dist/flowtop_${version}_${debarch}.deb"
dpkg-deb --root-owner-group -Zxz --build "$root" "$out" >/dev/null
echo "$out"
