#!/usr/bin/env bash
# shellcheck shell=bash
# load_dump: pg_restore of a set's dump into a new database. Sourced by restore_lib.sh after
# common.sh, pg.sh and compress.sh.
#
# An external zstd set read by pg_restore 15 goes through named pipes fed by zstd -d (see
# compress.sh). pg_restore -j starts the largest tables first, judging each table's size by a
# stat() of its data file, once, as it starts. A pipe has no size: every table would look empty
# and start in dump-id order (at the bench's scale 50 the largest table started last, and the
# restore took about 15 % longer). So at that stat each table's data file is a sparse placeholder
# as large as the table's data, and the pipes replace the placeholders before any of them is
# opened. A lock makes that order certain, not timing:
#   1. pg_restore --section=pre-data creates the tables;
#   2. a session takes SHARE locks on them, which a COPY into them waits for;
#   3. pg_restore -j --section=data --section=post-data starts: it stats the placeholders, then
#      its workers send each table's COPY, which waits on the lock before the file is opened;
#   4. once a COPY waits, links to the pipes replace the placeholders and the lock is released.
# A placeholder is never read: a worker opens a table's file only once its COPY has begun. Were
# one read all the same (the lock session ended early), its first line holds more fields than a
# table can have columns: that COPY fails, and the restore with it.

# shellcheck source-path=SCRIPTDIR
# shellcheck source=loaded_rows.sh
source "$(dirname "${BASH_SOURCE[0]}")/loaded_rows.sh"

LOAD_WRITERS=()

# load_dump DUMP_DIR INTO: restore the archive in DUMP_DIR into the database INTO (which exists
# and is empty) with DUMP_JOBS workers; dies clearly when pg_restore or a decompression fails.
# Reads the archive's list (pg_restore --list) that verify_source saved. LOADED_ROWS: the rows
# of the tables counted as they loaded (loaded_rows.sh).
load_dump() {
  local dump="$1" into="$2" rc=0
  ARCHIVE_LIST="$PRIVATE_TMP/toc.list"
  LOADED_ROWS=""
  stage_dump "$dump"
  if ((${#LOAD_PLACEHOLDERS[@]} == 0)); then
    start_restore "$into" -j "$DUMP_JOBS"
    finish_restore || rc=$?
  else
    run_child pg_restore -w --section=pre-data --exit-on-error -d "$(conninfo_db "$into")" \
      "$LOAD_DIR" 2>"$PRIVATE_TMP/restore.err" || rc=$?
    ((rc != 0)) || load_data_largest_first "$into" || rc=$?
  fi
  ((rc == 0)) || fail_pg_step "pg_restore into $into (exit $rc)" "$PRIVATE_TMP/restore.err"
  end_writers
}

# start_restore INTO PG_RESTORE_ARGS...: pg_restore (-v) of LOAD_DIR into INTO in the background,
# its messages to a pipe that finish_restore reads. With the manifest's exact row counts and
# more than one job, the row counter too (-j 1 reports no table as finished).
start_restore() {
  local into="$1" messages="$PRIVATE_TMP/pg_restore.messages"
  shift
  rm -f -- "$messages"
  mkfifo -m 600 -- "$messages"
  # (in English whatever the locale: the messages are matched below)
  LC_ALL=C pg_restore -w -v "$@" --exit-on-error -d "$(conninfo_db "$into")" "$LOAD_DIR" \
    2>"$messages" &
  RESTORE_PID=$!
  _CHILD_PIDS+=("$RESTORE_PID")
  exec {RESTORE_MESSAGES}<"$messages"
  if ((DUMP_JOBS > 1)) && [[ "$(manifest_field "$MANIFEST" row_counts || true)" == exact ]]; then
    start_row_counter "$into" "$ARCHIVE_LIST"
  fi
}

# finish_restore: relay pg_restore's messages until it ends (errors, warnings, their context and
# anything else that is not a -v progress line go to restore.err), counting each table once its
# data is reported loaded. Returns pg_restore's status.
finish_restore() {
  local line rc=0 kept='^pg_restore: ((error|warning|detail|hint):|from TOC entry |while [A-Z]+:)'
  while IFS= read -r line <&"$RESTORE_MESSAGES"; do
    if [[ "$line" =~ ^pg_restore:\ finished\ item\ ([0-9]+)\ TABLE\ DATA\  ]]; then
      count_loaded_table "${BASH_REMATCH[1]}"
    elif [[ "$line" != "pg_restore: "* || "$line" =~ $kept ]]; then
      printf '%s\n' "$line" >>"$PRIVATE_TMP/restore.err"
    fi
  done
  exec {RESTORE_MESSAGES}<&-
  wait "$RESTORE_PID" || rc=$?
  unset '_CHILD_PIDS[-1]'
  # (a failed load is reported at once, not after the counts still queued)
  ((rc == 0)) || [[ -z "$ROW_COUNTER_PID" ]] || kill "$ROW_COUNTER_PID" 2>/dev/null || true
  end_row_counter
  return "$rc"
}

# Tables whose data is smaller than this load in well under a second: their order does not
# matter, and their links to the pipes are in place at once.
SIZE_ORDER_MIN_BYTES=$((8 * 1024 * 1024))

# stage_dump DUMP_DIR: LOAD_DIR = the folder pg_restore should read. For an external zstd set
# and a pg_restore that cannot read .zst: a scratch folder with a copy of the small files and,
# per <n>.dat.zst, a link <n>.dat to a named pipe in $PRIVATE_TMP/pipes, its zstd -d writer
# waiting there for a reader. The pipes never move (a writer that opened a moved pipe's old path
# late would create a plain file there instead). When orders_by_size, a table's data of
# SIZE_ORDER_MIN_BYTES or more has a placeholder instead of its link (LOAD_PLACEHOLDERS lists
# them) until place_pipes.
stage_dump() {
  local dump="$1" file name size too_many_fields pipes="$PRIVATE_TMP/pipes"
  local -a names=() in_place=()
  local -A sizes=()
  LOAD_DIR="$dump"
  LOAD_PLACEHOLDERS=()
  set_is_external_zstd "$MANIFEST" || return 0
  if pg_restore_reads_zstd; then
    log "pg_restore $(tool_version pg_restore) reads the zstd files itself"
    return 0
  fi
  LOAD_DIR="$PRIVATE_TMP/dump"
  mkdir -p -- "$LOAD_DIR" "$pipes"
  for file in "$dump"/*; do
    name="$(basename -- "$file")"
    if [[ "$name" == *.dat.zst ]]; then names+=("${name%.zst}"); else cp -- "$file" "$LOAD_DIR/$name"; fi
  done
  ((${#names[@]} > 0)) || return 0
  (cd -- "$pipes" && mkfifo -m 600 -- "${names[@]}")
  # shellcheck disable=SC2016  # expanded when the cleanup runs
  add_cleanup 'for pid in "${LOAD_WRITERS[@]}"; do kill "$pid" 2>/dev/null; done'
  for name in "${names[@]}"; do
    zstd -q -d -c -- "$dump/$name.zst" >"$pipes/$name" 2>>"$PRIVATE_TMP/zstd.err" &
    LOAD_WRITERS+=("$!")
  done
  if orders_by_size; then
    while read -r name size; do sizes["$name"]="$size"; done < <(table_data_sizes "$dump")
  fi
  printf -v too_many_fields '%1700s' ''
  too_many_fields="${too_many_fields// /$'\t'}"
  for name in "${names[@]}"; do
    size="${sizes[$name]:-0}"
    if ((size >= SIZE_ORDER_MIN_BYTES)); then
      printf '%s\n' "$too_many_fields" >"$LOAD_DIR/$name"
      truncate -s "$size" -- "$LOAD_DIR/$name"
      LOAD_PLACEHOLDERS+=("$name")
    else
      in_place+=("$pipes/$name")
    fi
  done
  ((${#in_place[@]} == 0)) || ln -s -t "$LOAD_DIR" -- "${in_place[@]}"
  log "streaming ${#names[@]} zstd files to pg_restore through named pipes (${#LOAD_PLACEHOLDERS[@]} large tables ordered by size)"
}

# orders_by_size: whether to load the large tables first, by the steps above. Not with one job
# (one table after another: no order to keep), nor on a server with wal_level=minimal (a new
# server restored with non-durable settings): there a table's COPY skips WAL only when pg_restore
# created the table in the same run, which the separate pre-data run would forgo, costing more
# than the order gains.
orders_by_size() {
  ((DUMP_JOBS > 1)) && [[ "$(pg_query "$MAINTENANCE_DB" "SELECT current_setting('wal_level')")" != minimal ]]
}

# table_data_sizes DUMP_DIR: `<n>.dat <bytes>` for each TABLE DATA entry of the archive whose
# zstd file records its uncompressed size (in its frame header, read by zstd -l in one call).
# The entries are those of the archive's list: `<id>; <catalog oid> <oid> TABLE DATA ...`.
table_data_sizes() {
  local -a files=()
  local id line name=""
  while read -r id; do
    [[ ! -f "$1/$id.dat.zst" ]] || files+=("$1/$id.dat.zst")
  done < <(sed -n 's/^\([0-9][0-9]*\); [0-9][0-9]* [0-9][0-9]* TABLE DATA .*/\1/p' "$ARCHIVE_LIST")
  ((${#files[@]} > 0)) || return 0
  while IFS= read -r line; do
    case "$line" in
      *.dat.zst*) name="${line%%.zst*}" name="${name##*/}" ;;
      "Decompressed Size:"*"B)")
        line="${line##*(}"
        [[ -z "$name" ]] || printf '%s %s\n' "$name" "${line%% B)}"
        name="" ;;
    esac
  done < <(zstd -l -v -- "${files[@]}" 2>/dev/null || true)
}

# load_data_largest_first INTO: steps 2-4 above, then waits for pg_restore. Returns its status.
# When the lock cannot be taken (no privilege on a table, too many tables for the server's lock
# table, or another session's lock held for 10 s), the pipes go in place first and the tables
# load in dump-id order: slower, as correct.
load_data_largest_first() {
  local into="$1" answer="" gate_pid
  coproc LOAD_GATE {
    PGAPPNAME=pgbackup-load-order exec "${PSQL[@]}" -d "$(conninfo_db "$into")" 2>"$PRIVATE_TMP/gate.err"
  }
  gate_pid="$LOAD_GATE_PID"
  # shellcheck disable=SC2016  # expanded when the cleanup runs
  add_cleanup '[[ -z "${LOAD_GATE_PID:-}" ]] || kill "$LOAD_GATE_PID" 2>/dev/null'
  { gate_send "BEGIN;" "SET LOCAL lock_timeout = '10s';" "$(lock_tables_sql)" "SELECT 'locked';" &&
    gate_read answer; } || true
  if [[ "$answer" != locked ]]; then
    warn "could not lock the new tables ($(first_error_line "$PRIVATE_TMP/gate.err")): they load in dump order, not largest first"
    place_pipes
  fi
  start_restore "$into" -j "$DUMP_JOBS" --section=data --section=post-data
  if [[ "$answer" == locked ]]; then
    until [[ "$answer" =~ ^[1-9] ]] || ! kill -0 "$RESTORE_PID" 2>/dev/null; do
      sleep 0.02
      { gate_send "SELECT count(*) FROM pg_locks WHERE NOT granted AND locktype = 'relation'
        AND database = (SELECT oid FROM pg_database WHERE datname = current_database());" &&
        gate_read answer; } || break
    done
    place_pipes
    gate_send "COMMIT;" '\q' || true
  fi
  wait "$gate_pid" 2>/dev/null || true
  finish_restore
}

# gate_send LINE...: to the lock session; fails once the session has ended. gate_read VAR: its
# next line of output.
gate_send() { send_lines "${LOAD_GATE[1]:-}" "$@"; }
gate_read() {
  local fd="${LOAD_GATE[0]:-}"
  [[ -n "$fd" ]] && IFS= read -r "$1" <&"$fd"
}

# lock_tables_sql: psql input that takes a SHARE lock on every table of the database at once.
lock_tables_sql() {
  cat <<'SQL'
SELECT 'LOCK TABLE ' || string_agg(c.oid::regclass::text, ', ') || ' IN SHARE MODE'
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\_toast%'
HAVING count(*) > 0 \gexec
SQL
}

# place_pipes: the placeholders are replaced by links to their pipes (each rename is atomic).
place_pipes() {
  local links="$PRIVATE_TMP/links"
  ((${#LOAD_PLACEHOLDERS[@]} > 0)) || return 0
  mkdir -p -- "$links"
  ln -s -t "$links" -- "${LOAD_PLACEHOLDERS[@]/#/$PRIVATE_TMP/pipes/}"
  mv -f -t "$LOAD_DIR" -- "${LOAD_PLACEHOLDERS[@]/#/$links/}"
  LOAD_PLACEHOLDERS=()
}

# end_writers: after pg_restore succeeded, every pipe it opened was read to the end; end the
# writers of any it did not open, and fail if a decompression failed.
end_writers() {
  local pid rc failed=0
  for pid in "${LOAD_WRITERS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${LOAD_WRITERS[@]}"; do
    rc=0
    wait "$pid" 2>/dev/null || rc=$?
    ((rc == 0 || rc == 143)) || failed=$((failed + 1))
  done
  LOAD_WRITERS=()
  ((failed == 0)) || fail_pg_step "decompressing $failed zstd file(s) of backup $ID" "$PRIVATE_TMP/zstd.err"
}
