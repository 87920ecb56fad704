#!/usr/bin/env bash
# shellcheck shell=bash
# sha256 of streams and files, and the check of a set's SHA256SUMS. Sourced by common.sh.
#
# coreutils' sha256sum does not use the CPU's SHA instructions: about 170 MB/s here, 2 s for each
# pass over a 370 MB set (a backup makes two). openssl uses them (about 1 GB/s) and is in the
# postgres images (postgresql-common depends on ssl-cert, which depends on openssl). Where it is
# missing (the aws-cli image), sha256sum does the same job, slower.

# SHA256_TOOL: the program used (scripts name it in require_tool).
# shellcheck disable=SC2034  # read by the scripts that source this file
if command -v openssl >/dev/null 2>&1; then
  SHA256_TOOL=openssl
  _SHA256=(openssl dgst -sha256 -r)
else
  SHA256_TOOL=sha256sum
  _SHA256=(sha256sum)
fi

# sha256_stream: the hex sha256 of stdin, on stdout.
sha256_stream() {
  local out
  out="$("${_SHA256[@]}")" || return 1
  [[ "$out" =~ ^([0-9a-f]{64}) ]] || return 1
  printf '%s\n' "${BASH_REMATCH[1]}"
}

# sha256_files FILE...: `<sum>  <file>` per file, as sha256sum prints it (names without newlines).
sha256_files() {
  local line
  "${_SHA256[@]}" -- "$@" | while IFS= read -r line; do
    # openssl -r prints `<sum> *<file>`; sha256sum prints `<sum>  <file>`.
    printf '%s  %s\n' "${line:0:64}" "${line:66}"
  done
  # a failed hasher (a missing or unreadable file) fails the pipeline
  return "${PIPESTATUS[0]}"
}

# check_sums DIR [SUMS]: every line of SUMS (default DIR/SHA256SUMS) is a well-formed
# `<sha256>  <relative path>` inside DIR, and the file there has that sum. On a mismatch, prints
# `<path>: FAILED` (or what is wrong) per bad line on stdout and returns 1.
check_sums() {
  local dir="$1" sums="${2:-$1/SHA256SUMS}" line sum path bad=0
  local -A want=()
  local -a paths=()
  while IFS= read -r line || [[ -n "$line" ]]; do
    if [[ ! "$line" =~ ^([0-9a-f]{64})\ \ ([^/].*)$ ]] || [[ "/${BASH_REMATCH[2]}/" == */../* ]]; then
      printf '%s: improperly formatted line\n' "${sums##*/}"
      return 1
    fi
    path="${BASH_REMATCH[2]}"
    want["$path"]="${BASH_REMATCH[1]}"
    paths+=("$path")
  done <"$sums"
  ((${#paths[@]} > 0)) || { printf '%s: no checksums\n' "${sums##*/}"; return 1; }
  for path in "${paths[@]}"; do
    [[ -f "$dir/$path" ]] || { printf '%s: missing\n' "$path"; bad=1; }
  done
  ((bad == 0)) || return 1
  local -A seen=()
  while read -r sum path; do
    seen["$path"]=1
    [[ "${want[$path]:-}" == "$sum" ]] || { printf '%s: FAILED\n' "$path"; bad=1; }
  done < <(cd "$dir" && sha256_files "${paths[@]}")
  for path in "${paths[@]}"; do
    [[ -n "${seen[$path]:-}" ]] || { printf '%s: could not be read\n' "$path"; bad=1; }
  done
  return "$bad"
}

# check_manifest_files DIR: the manifest's file list agrees with SHA256SUMS and the disk: the same
# files (a data file missing from both SHA256SUMS and the folder is caught here, not by
# check_sums), the same sums, each file the size the manifest says, and SHA256SUMS itself the sum
# the manifest records. Parses the manifest as backup.sh writes it, whatever its line layout or
# key order. Prints what is wrong on stdout and returns 1.
check_manifest_files() {
  local dir="$1" manifest="$1/manifest.json" flat entry path size sha sum n=0 listed=0 nl=$'\n'
  local -A sums=()
  while read -r sum path; do
    [[ -n "$sum" ]] || continue
    sums["${path#\*}"]="$sum"
    listed=$((listed + 1))
  done <"$dir/SHA256SUMS"
  flat="$(tr '\n' ' ' <"$manifest" | sed 's/"files"[[:space:]]*:[[:space:]]*\[/\n/' | sed -n '2p')"
  flat="${flat%%]*}"
  while IFS= read -r entry; do
    [[ "$entry" =~ \"path\"[[:space:]]*:[[:space:]]*\"([^\"]*)\" ]] || continue
    path="${BASH_REMATCH[1]}"
    size="" sha=""
    if [[ "$entry" =~ \"size\"[[:space:]]*:[[:space:]]*([0-9]+) ]]; then size="${BASH_REMATCH[1]}"; fi
    if [[ "$entry" =~ \"sha256\"[[:space:]]*:[[:space:]]*\"([0-9a-f]{64})\" ]]; then
      sha="${BASH_REMATCH[1]}"
    fi
    if [[ ! -f "$dir/$path" || "$(stat -c %s -- "$dir/$path")" != "$size" ]]; then
      printf '%s is missing or not the %s bytes the manifest says\n' "$path" "$size"
      return 1
    fi
    if [[ "$path" == "SHA256SUMS" ]]; then
      [[ "$(sha256_stream <"$dir/SHA256SUMS")" == "$sha" ]] ||
        { printf 'SHA256SUMS differs from the checksum in the manifest\n'; return 1; }
      continue
    fi
    [[ "${sums[$path]:-}" == "$sha" ]] ||
      { printf '%s has a different checksum in the manifest and in SHA256SUMS\n' "$path"; return 1; }
    n=$((n + 1))
  done < <(printf '%s\n' "${flat//\}/$nl}")
  if ((n == 0 || n != listed)); then
    printf 'the manifest lists %d file(s) and SHA256SUMS %d: they must agree\n' "$n" "$listed"
    return 1
  fi
}
