#!/usr/bin/env bash
# A real full disk (a 12 MB tmpfs; mounting one needs root, so a skip, 77, otherwise):
# simulate says so in one line, exits 1, leaves nothing, and does not crash at exit
# (libhdf5 could not close a file a full disk broke, and crashed in its shutdown).
# cli_disk_full.sh covers every writer without root. Usage: cli_disk_full_tmpfs.sh SPINIFEL
set -u
bin="$1"
source "$(dirname "$0")/lib_cli.sh"
[ "$(id -u)" = 0 ] || { echo "skip: mounting a small tmpfs needs root"; exit 77; }
tmp="$(mktemp -d /tmp/spf_cli_tmpfsXXXXXX)"
trap 'umount "$tmp/full" 2> /dev/null; rm -rf "$tmp"' EXIT
mkdir -p "$tmp/full"
mount -t tmpfs -o size=12m tmpfs "$tmp/full" 2> /dev/null || { echo "skip: cannot mount a tmpfs here"; exit 77; }
check "a disk that fills up" 1 "$bin" simulate --images 3000 --pixels 64 -o "$tmp/full/d.h5" --quiet
expect "a full disk: one line" one_line
expect "a full disk: said so" bash -c "echo \"\$0\" | grep -q 'free space'" "$LAST_OUT"
expect "a full disk: nothing left" bash -c "[ -z \"\$(ls -A '$tmp/full')\" ]"
finish
