#!/usr/bin/env bash
# Installs the system tools the tests and the demo use, when they are missing and we may:
# PostgreSQL server binaries (tests run a real server), shellcheck (the in-container scripts), zstd,
# promtool (the alert rules).
# Without root or apt, it says what is missing; the PostgreSQL binaries can then come from the
# `pgserver` wheel instead (PostgreSQL 16, gzip only).
set -euo pipefail

missing=()
pg_bindir=$(pg_config --bindir 2>/dev/null || true)
[[ -n "$pg_bindir" && -x "$pg_bindir/initdb" ]] || compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || missing+=(postgresql)
command -v shellcheck >/dev/null || missing+=(shellcheck)
command -v zstd >/dev/null || missing+=(zstd)
# pigz only for the benchmark's "Zalando style" row.
command -v pigz >/dev/null || missing+=(pigz)
command -v flock >/dev/null || missing+=(util-linux)
# promtool evaluates the alert rules in the tests (Prometheus' own rule engine).
command -v promtool >/dev/null || missing+=(prometheus)

if ((${#missing[@]} == 0)); then
  exit 0
fi
if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
  echo "installing system packages: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "missing system packages: ${missing[*]} (install them, e.g. apt-get install ${missing[*]})" >&2
  exit 1
fi
