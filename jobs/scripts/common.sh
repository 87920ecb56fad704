#!/usr/bin/env bash
# shellcheck shell=bash
# Shared helpers of the in-container steps. Sourced, never run:
#   source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
# Needs bash, coreutils and (for the lock) util-linux flock: present in the postgres and
# amazon/aws-cli images. Everything here writes to stderr only; stdout is kept for the one-line
# JSON summaries the operator CLI reads.
set -euo pipefail

# -- exit codes (same numbers as jobs/errors.py) -------------------------------------------------
# shellcheck disable=SC2034  # used by the scripts that source this file
readonly EX_OK=0 EX_USAGE=64 EX_CORRUPT=65 EX_NOT_FOUND=66 EX_UNREACHABLE=69 EX_STEP_FAILED=70 \
  EX_NO_SPACE=73 EX_LOCKED=75 EX_DENIED=77 EX_CONFIG=78

# A local PostgreSQL bin dir (tests, demo) goes first so its tools win over any others on PATH.
if [[ -n "${PG_BINDIR:-}" ]]; then
  PATH="$PG_BINDIR:$PATH"
  export PATH
fi

BACKUP_DIR="${BACKUP_DIR:-/backups}"
# Set by a script to also append its log lines to a file (backup_<id>.log).
LOG_FILE="${LOG_FILE:-}"
# Set by a script (e.g. "backup") so that `die` also prints a failed JSON summary on stdout.
SUMMARY_EVENT="${SUMMARY_EVENT:-}"
# The script's stdout, kept: a failure inside a call whose output is redirected (`pg_query ..
# >/dev/null`) must still print its summary where the operator CLI reads it.
exec {SUMMARY_FD}>&1

# -- logging -------------------------------------------------------------------------------------
utc_now() { date -u +%Y-%m-%dT%H:%M:%SZ; }

# log MESSAGE...: one timestamped line on stderr (and in LOG_FILE when set). Never fails: a full
# disk must not turn a log line into a second error that hides the first.
log() {
  local line
  line="$(utc_now) $*"
  printf '%s\n' "$line" >&2 || true
  if [[ -n "$LOG_FILE" ]]; then
    { printf '%s\n' "$line" >>"$LOG_FILE"; } 2>/dev/null || true
  fi
}

warn() { log "WARNING: $*"; }

# die CODE "cause" "fix": the one error line `ERROR: cause — fix`, then exit with CODE. Called in
# a subshell ($(...)), it also leaves the message where the main shell's exit handler finds it.
die() {
  local code="$1" cause="$2" fix="${3:-}"
  log "ERROR: ${cause} — ${fix}"
  _DIE_MESSAGE="${cause} — ${fix}"
  if [[ "$BASHPID" != "$$" && -n "${PRIVATE_TMP:-}" ]]; then
    printf '%s' "$_DIE_MESSAGE" >"$PRIVATE_TMP/last_error" 2>/dev/null || true
  fi
  exit "$code"
}

# failed_summary CODE: when a script with SUMMARY_EVENT fails, one JSON line on stdout says so
# (the CLI reads it like the success summary).
_DIE_MESSAGE=""
failed_summary() {
  local code="$1" message="$_DIE_MESSAGE"
  [[ -n "$SUMMARY_EVENT" ]] || return 0
  if [[ -z "$message" && -n "${PRIVATE_TMP:-}" && -s "$PRIVATE_TMP/last_error" ]]; then
    message="$(cat "$PRIVATE_TMP/last_error")"
  fi
  [[ -n "$message" ]] || message="the step stopped unexpectedly (exit $code) — see the log lines above"
  printf '{"event":"%s","status":"failed","exit_code":%d,"error":"%s"}\n' \
    "$(json_escape "$SUMMARY_EVENT")" "$code" "$(json_escape "$message")" 1>&"$SUMMARY_FD" 2>/dev/null || true
}

# -- JSON ----------------------------------------------------------------------------------------
# json_escape TEXT: TEXT escaped for use inside a JSON string (no surrounding quotes).
json_escape() {
  local s="$1" out="" ch i
  s="${s//\\/\\\\}"
  s="${s//\"/\\\"}"
  s="${s//$'\n'/\\n}"
  s="${s//$'\r'/\\r}"
  s="${s//$'\t'/\\t}"
  if [[ "$s" == *[$'\001'-$'\037']* ]]; then
    for ((i = 0; i < ${#s}; i++)); do
      ch="${s:i:1}"
      if [[ "$ch" == [$'\001'-$'\037'] ]]; then
        printf -v ch '\\u%04x' "'$ch"
      fi
      out+="$ch"
    done
    s="$out"
  fi
  printf '%s' "$s"
}

# json_string TEXT: TEXT as a quoted JSON string.
json_string() { printf '"%s"' "$(json_escape "$1")"; }

# -- manifest ------------------------------------------------------------------------------------
# manifest_field FILE NAME: the value of a top-level scalar field of a manifest.json. The manifest
# is pretty-printed with each top-level field on its own line, indented by two spaces, so sed can
# read it without jq. Prints nothing (and returns 1) when the field is absent.
manifest_field() {
  local file="$1" name="$2" value
  [[ -r "$file" ]] || return 1
  value="$(sed -n \
    -e "s/^  \"${name}\": \"\\(.*\\)\",\\{0,1\\}\$/\\1/p" \
    -e "s/^  \"${name}\": \\([^\"[{][^,]*\\),\\{0,1\\}\$/\\1/p" "$file" | head -n 1)"
  [[ -n "$value" ]] || return 1
  # Undo the two escapes our scalar values can carry.
  value="${value//\\\"/\"}"
  value="${value//\\\\/\\}"
  printf '%s\n' "$value"
}

# manifest_raw FILE NAME: the raw JSON text of a top-level field written on one line (arrays and
# objects included), without the trailing comma.
manifest_raw() {
  local file="$1" name="$2" value
  value="$(sed -n -e "s/^  \"${name}\": \\(.*\\)\$/\\1/p" "$file" | head -n 1)"
  [[ -n "$value" ]] || return 1
  printf '%s\n' "${value%,}"
}

# set_is_verified SET_DIR: true when SET_DIR holds a manifest that says "status": "verified".
set_is_verified() {
  [[ -f "$1/manifest.json" ]] && [[ "$(manifest_field "$1/manifest.json" status || true)" == "verified" ]]
}

# -- backup ids ----------------------------------------------------------------------------------
# An id is the UTC time, lowercase (it ends up inside database names): 20260119t020000z, with
# -2, -3... appended when a set of that second exists already.
readonly BACKUP_ID_PATTERN='^[0-9]{8}t[0-9]{6}z(-[0-9]+)?$'

is_backup_id() { [[ "$1" =~ $BACKUP_ID_PATTERN ]]; }

# new_backup_id DB_DIR: a fresh id not used by a set (complete or partial) in DB_DIR.
new_backup_id() {
  local dir="$1" base id n=1
  base="$(date -u +%Y%m%dt%H%M%Sz)"
  id="$base"
  while [[ -e "$dir/$id" || -e "$dir/$id.partial" ]]; do
    n=$((n + 1))
    id="$base-$n"
  done
  printf '%s\n' "$id"
}

# id_epoch ID: seconds since the epoch of the time an id names (for ages and retention).
id_epoch() {
  local id="${1%%-*}"
  id="${id%.partial}"
  date -u -d "${id:0:4}-${id:4:2}-${id:6:2} ${id:9:2}:${id:11:2}:${id:13:2}" +%s
}

# set_ids DB_DIR: ids of the complete-looking set folders in DB_DIR (no .partial), oldest first.
# Plain globbing, no find: newer aws-cli images do not have it.
set_ids() {
  local dir="$1" path name
  for path in "$dir"/*/; do
    [[ -d "$path" ]] || continue
    name="$(basename "$path")"
    is_backup_id "$name" && printf '%s\n' "$name"
  done | sort -V
}

# OFFSITE_MARK: written into a set's folder by upload.sh once its manifest is offsite (the set then
# counts offsite). With RETAIN_UNTIL_OFFSITE=1 retention never deletes a set without it: a set
# that never reached the bucket is the only copy there is.
# shellcheck disable=SC2034  # used by upload.sh and backup_lib.sh
readonly OFFSITE_MARK=".offsite"

# latest_verified_id DB_DIR: the newest set whose manifest exists and says verified. Returns 1
# (printing nothing) when there is none.
latest_verified_id() {
  local dir="$1" id found=""
  while IFS= read -r id; do
    if set_is_verified "$dir/$id"; then
      found="$id"
    fi
  done < <(set_ids "$dir")
  [[ -n "$found" ]] || return 1
  printf '%s\n' "$found"
}

# -- cleanup on exit -----------------------------------------------------------------------------
# Scripts register cleanup commands; they run once, newest first, however the script ends
# (normal exit, error, SIGTERM from Kubernetes, Ctrl-C).
_CLEANUPS=()
_CHILD_PIDS=()

add_cleanup() { _CLEANUPS+=("$1"); }

_run_cleanups() {
  local rc=$? i pid
  set +e
  trap - EXIT INT TERM HUP
  for pid in "${_CHILD_PIDS[@]}"; do
    [[ "$pid" =~ ^[1-9][0-9]*$ ]] && kill -TERM "$pid" 2>/dev/null
  done
  ((rc == 0)) || failed_summary "$rc"
  for ((i = ${#_CLEANUPS[@]} - 1; i >= 0; i--)); do
    eval "${_CLEANUPS[i]}"
  done
  exit "$rc"
}
trap _run_cleanups EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# run_child CMD...: run a long step in the background and wait for it, so that a SIGTERM to this
# script is handled at once (the child is stopped by the cleanup) rather than after the step.
run_child() {
  local pid rc=0
  "$@" &
  pid=$!
  _CHILD_PIDS+=("$pid")
  wait "$pid" || rc=$?
  unset '_CHILD_PIDS[-1]'
  return "$rc"
}

# send_lines FD LINE...: LINEs to a child process's input on FD; fails (never kills the script by
# SIGPIPE) once that process has stopped reading. (A subshell cannot do the write: a coprocess's
# pipes are not open in subshells. So SIGPIPE is ignored in this shell for the one write.)
send_lines() {
  local fd="$1" rc=0
  shift
  [[ -n "$fd" ]] || return 1
  trap '' PIPE
  { printf '%s\n' "$@" >&"$fd"; } 2>/dev/null || rc=1
  trap - PIPE
  return "$rc"
}

# -- private temporary directory and the password file -------------------------------------------
PRIVATE_TMP=""

# init_private_tmp: a 0700 directory under ${TMPDIR:-/tmp}, removed on exit.
init_private_tmp() {
  [[ -n "$PRIVATE_TMP" ]] && return 0
  PRIVATE_TMP="$(mktemp -d "${TMPDIR:-/tmp}/pgbackup.XXXXXXXX")" ||
    die "$EX_NO_SPACE" "cannot create a temporary directory under ${TMPDIR:-/tmp}" \
      "give the container a writable emptyDir and point TMPDIR at it"
  chmod 700 "$PRIVATE_TMP"
  # shellcheck disable=SC2016  # expanded when the cleanup runs
  add_cleanup 'rm -rf -- "$PRIVATE_TMP"'
}

# setup_pgpass: the password reaches libpq only through a file, never argv or the environment.
# An existing PGPASSFILE is used as is; else PGPASSWORD_FILE (the Secret's raw password) becomes
# a 0600 pgpass in the private temp dir (a Secret volume with fsGroup has group bits, which libpq
# refuses). With neither, libpq's own defaults apply (trust or peer auth).
setup_pgpass() {
  if [[ -n "${PGPASSFILE:-}" && -f "${PGPASSFILE}" ]]; then
    if [[ "$(stat -c %a "$PGPASSFILE" 2>/dev/null || echo 600)" != [0-7]00 ]]; then
      warn "PGPASSFILE $PGPASSFILE is readable by group or others; libpq will ignore it (chmod 0600 it)"
    fi
    return 0
  fi
  [[ -n "${PGPASSWORD_FILE:-}" ]] || return 0
  [[ -r "$PGPASSWORD_FILE" ]] ||
    die "$EX_CONFIG" "PGPASSWORD_FILE $PGPASSWORD_FILE is missing or unreadable" \
      "mount the database password Secret at that path (or unset PGPASSWORD_FILE)"
  init_private_tmp
  local password="" escaped
  IFS= read -r password <"$PGPASSWORD_FILE" || true
  password="${password%$'\r'}"
  [[ -n "$password" ]] ||
    die "$EX_CONFIG" "PGPASSWORD_FILE $PGPASSWORD_FILE is empty" \
      "put the database password in the Secret that is mounted there"
  # pgpass escapes: backslash and colon.
  escaped="${password//\\/\\\\}"
  escaped="${escaped//:/\\:}"
  (
    umask 077
    printf '*:*:*:*:%s\n' "$escaped" >"$PRIVATE_TMP/pgpass"
  )
  unset password escaped
  export PGPASSFILE="$PRIVATE_TMP/pgpass"
}

# -- where sets are -------------------------------------------------------------------------------
# sets_folder DB: the folder of DB's sets on the volume. Another stack's sets (SOURCE_STACK, fetched
# to rehearse its restore here) go under $BACKUP_DIR/.stacks/<stack>/, never among this stack's
# own: even one with our database's name and id is then not taken for ours by a backup's retention,
# an upload (into our bucket), a listing or `latest`, which all skip dot folders.
sets_folder() {
  if [[ -n "${SOURCE_STACK:-}" ]]; then
    printf '%s/.stacks/%s/%s' "$BACKUP_DIR" "$SOURCE_STACK" "$1"
  else
    printf '%s/%s' "$BACKUP_DIR" "$1"
  fi
}

# require_stack_name: SOURCE_STACK, when set, is a plain stack name (it becomes a folder name).
require_stack_name() {
  [[ -z "${SOURCE_STACK:-}" || "$SOURCE_STACK" =~ ^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$ ]] ||
    die "$EX_USAGE" "SOURCE_STACK '$SOURCE_STACK' is not a stack name" \
      "use the other stack's name as Pulumi spells it (letters, digits, '_', '.', '-'), e.g. production"
}

# -- lock ----------------------------------------------------------------------------------------
# lock_database_dir DB_DIR: one run at a time per database and volume (backup, restore, fetch).
# CronJob concurrencyPolicy does not see Jobs made by hand, so the volume itself carries the lock.
# The lock is held until the script exits (the descriptor stays open).
lock_database_dir() {
  local dir="$1"
  mkdir -p "$dir" 2>/dev/null ||
    die "$EX_DENIED" "cannot create $dir on the backup volume" \
      "check that the volume is mounted read-write and owned by the pod's fsGroup"
  exec {LOCK_FD}>>"$dir/.lock" ||
    die "$EX_DENIED" "cannot open the lock file $dir/.lock" \
      "check that the backup volume is mounted read-write"
  if ! flock -n "$LOCK_FD"; then
    die "$EX_LOCKED" "another backup, restore or fetch of this database is running (lock $dir/.lock is held)" \
      "wait for it to finish and retry (a run on another node does not get this far: with a ReadWriteOnce volume its pod waits at Multi-Attach until this one ends)"
  fi
}

# -- small checks --------------------------------------------------------------------------------
# require_positive_int NAME VALUE
require_positive_int() {
  [[ "$2" =~ ^[1-9][0-9]*$ ]] ||
    die "$EX_CONFIG" "$1 must be a positive whole number, got '$2'" "set $1 to e.g. 2"
}

# require_nonnegative_int NAME VALUE
require_nonnegative_int() {
  [[ "$2" =~ ^[0-9]+$ ]] ||
    die "$EX_CONFIG" "$1 must be a whole number, got '$2'" "set $1 to e.g. 7"
}

# require_folder_name WHAT NAME: a database name is used as a folder name, an S3 key part and
# inside other database names: keep it plain. (PostgreSQL allows almost anything; the backup
# volume and shell steps do not.)
require_folder_name() {
  [[ -n "$2" ]] || die "$EX_USAGE" "$1 is not set" "set $1 to the database name"
  [[ "$2" != */* && "$2" != .* && "$2" != *$'\n'* && ${#2} -le 63 ]] ||
    die "$EX_USAGE" "$1 '$2' cannot be used as a folder name" \
      "use a database name without '/', newlines or a leading dot, at most 63 bytes"
}

# require_tool NAME...: fail clearly when the image lacks a tool.
require_tool() {
  local tool
  for tool in "$@"; do
    command -v "$tool" >/dev/null 2>&1 ||
      die "$EX_CONFIG" "$tool is not installed in this image" \
        "run this step in the image the contract names (postgres or amazon/aws-cli)"
  done
}

# dir_bytes PATH: apparent size in bytes of a file tree.
dir_bytes() {
  local total
  total="$(du -sb -- "$1" 2>/dev/null | head -n 1)" || true
  total="${total%%[!0-9]*}" # (a path with a line break spans lines; a vanished one prints nothing)
  printf '%s\n' "${total:-0}"
}

# sha256 of streams and files, and the check of a set's SHA256SUMS.
# shellcheck source-path=SCRIPTDIR source=checksums.sh
source "$(dirname "${BASH_SOURCE[0]}")/checksums.sh"
