#!/usr/bin/env bash
# What the tests and the demo use besides the database: headless Chromium (the HTML report is
# opened and screenshot as a person would) and a CJK font, so that Korean renders in the
# report and the pictures. Debian's packages; idempotent: where they are there it installs
# nothing. Without root or apt-get it says what is missing and exits 1.
set -euo pipefail

say() { printf 'install-test-tools: %s\n' "$*" >&2; }

missing=()
command -v chromium >/dev/null || missing+=(chromium)
fc-list :lang=ko 2>/dev/null | grep -q . || missing+=(fonts-noto-cjk)
[ "${#missing[@]}" = 0 ] && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    say "missing: ${missing[*]} (Debian packages); install them as root"
    exit 1
fi
say "apt-get install ${missing[*]}"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
