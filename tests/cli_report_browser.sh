#!/usr/bin/env bash
# report.html opened in headless Chromium: every picture decodes. A skip (77) where no
# Chromium is installed (Debian's package chromium). Usage: cli_report_browser.sh SPINIFEL
set -u
bin="$1"
source "$(dirname "$0")/lib_cli.sh"
chrome="$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)"
[ -n "$chrome" ] || { echo "skip: chromium not installed"; exit 77; }
tmp="$(mktemp -d /tmp/spf_cli_browserXXXXXX)"
trap 'rm -rf "$tmp"' EXIT
check "simulate" 0 "$bin" simulate --images 200 --pixels 16 --distance 0.03 --no-noise -o "$tmp/d.h5" --quiet
check "reconstruct" 0 "$bin" reconstruct "$tmp/d.h5" -o "$tmp/r" --M 15 --refs 300 --refs-start 0 --soft-k 8 \
  --soft-gens 1 --phase-cycles 2 --generations 2 --threads 2 --pictures-each 1 --quiet
dom="$(timeout 60 "$chrome" --headless --no-sandbox --disable-gpu --allow-file-access-from-files \
       --virtual-time-budget=5000 --dump-dom "file://$tmp/r/report.html" 2> /dev/null)"
expect "report loads in headless Chromium, every picture decoded" \
  bash -c "echo \"\$0\" | grep -q 'data-images-loaded=\"yes\"'" "$dom"
finish
