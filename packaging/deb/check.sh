#!/bin/sh
# CI check of the Debian package: build it, install it with dpkg -i, run
# the installed flowtop and find its man page, then purge it and check
# that nothing is left. Run as root on a machine without flowtop installed.
set -eu
cd "$(dirname "$0")/../.."
if dpkg -s flowtop >/dev/null 2>&1; then
	echo "check.sh: a flowtop package is installed already; not touching it" >&2
	exit 1
fi
deb=$(sh packaging/deb/build.sh "$(git describe --tags --always 2>/dev/null || echo 0.0.0)")
trap 'dpkg --purge flowtop >/dev/null 2>&1 || true' EXIT
dpkg -i "$deb" >/dev/null
/usr/sbin/flowtop --version
man -w flowtop
for f in /etc/flowtop/tcp.conf /etc/default/flowtop /lib/systemd/system/flowtop.service; do
	[ -f "$f" ] || { echo "check.sh: $f not installed" >&2; exit 1; }
done
dpkg --purge flowtop >/dev/null
for f in /usr/sbin/flowtop /etc/flowtop/tcp.conf /etc/default/flowtop /usr/share/man/man8/flowtop.8.gz; do
	[ ! -e "$f" ] || { echo "check.sh: $f left after purge" >&2; exit 1; }
done
rm -f "$deb"
echo "deb ok: $(basename "$deb") installs, runs, has its man page and purges cleanly"
