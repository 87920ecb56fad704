#!/usr/bin/env bash
# shellcheck shell=bash
# Row counts taken while the load goes on. Sourced by load_dump.sh.
#
# The restore proves itself by counting every table's rows against the manifest. Counted after
# pg_restore, that is a second of scanning that nothing overlaps. But pg_restore -j reports each
# table's data as finished ("finished item <id> TABLE DATA ...", printed by its leader once the
# worker's COPY has committed), and from then on nothing in the restore changes that table's rows.
# So a session of its own counts each table then, while the other tables still load; near the end
# of a restore one worker is often idle (the last index build runs alone), and the counts fill it.
# check_restored then counts only the tables not counted here (at the bench's scale 50: 0.04 s
# instead of 0.9 s after the load; the restore as a whole gains less, 0.2-0.5 s, as the counts
# share the CPU with the load). A table this session cannot name with certainty, or fails to
# count, is simply counted there.

LOADED_ROWS=""
ROW_COUNTER_FD=""
ROW_COUNTER_PID=""
declare -A TABLE_DATA_ENTRIES=() FINISHED_ITEMS=()

# start_row_counter INTO LISTFILE: the counting session on INTO, reading from a pipe
# (ROW_COUNTER_FD) and writing `<id> (<oid>::oid, <rows>::bigint)` lines to a file. LISTFILE is
# the archive's list; its TABLE DATA lines read `<id>; 0 <oid> TABLE DATA <schema> <table>
# <owner>`. The list prints a newline in a name as a space: entries that two items share are
# left out (either could be the table that entry finds).
start_row_counter() {
  local into="$1" id entry queries="$PRIVATE_TMP/row_counter.sql"
  local -A items_of=()
  TABLE_DATA_ENTRIES=()
  FINISHED_ITEMS=()
  while read -r id entry; do
    TABLE_DATA_ENTRIES["$id"]="$entry"
    items_of["$entry"]+=x # (a tally kept as text: names never enter arithmetic)
  done < <(sed -n 's/^\([0-9][0-9]*\); [0-9][0-9]* [0-9][0-9]* TABLE DATA \(.*\)$/\1 \2/p' "$2")
  for id in "${!TABLE_DATA_ENTRIES[@]}"; do
    [[ "${items_of[${TABLE_DATA_ENTRIES[$id]}]}" == x ]] || unset 'TABLE_DATA_ENTRIES[$id]'
  done
  ((${#TABLE_DATA_ENTRIES[@]} > 0)) || return 0
  rm -f -- "$queries" "$PRIVATE_TMP/loaded_rows"
  mkfifo -m 600 -- "$queries"
  # The pipe is its input, opened before psql starts (were it opened by psql, after connecting,
  # a session that cannot connect would leave the open below waiting forever). ON_ERROR_STOP
  # off: a count that fails leaves its table to check_restored.
  PGAPPNAME=pgbackup-row-counter "${PSQL[@]}" -v ON_ERROR_STOP=0 -d "$(conninfo_db "$into")" \
    <"$queries" >"$PRIVATE_TMP/loaded_rows" 2>"$PRIVATE_TMP/row_counter.err" &
  ROW_COUNTER_PID=$!
  # shellcheck disable=SC2016  # expanded when the cleanup runs
  add_cleanup '[[ -z "${ROW_COUNTER_PID:-}" ]] || kill "$ROW_COUNTER_PID" 2>/dev/null'
  exec {ROW_COUNTER_FD}>"$queries"
  # One process per count: with parallel workers the fixture's tables took 1.5-1.6 CPU-seconds
  # to count instead of 1.1-1.4, on cores the load keeps busy, and the workers are the ones the
  # live database's queries use on the same server.
  send_lines "$ROW_COUNTER_FD" "SET max_parallel_workers_per_gather = 0;" || stop_row_counter
}

# count_loaded_table ID: the archive's item ID (a TABLE DATA entry) has been loaded: count its
# table. The table is found by its list entry `<schema> <table> <owner>`, and counted only when
# exactly one table has that entry (names with spaces could make two of them match).
count_loaded_table() {
  local entry="${TABLE_DATA_ENTRIES[$1]:-}"
  FINISHED_ITEMS["$1"]+=x
  [[ -n "$ROW_COUNTER_FD" && -n "$entry" && "${FINISHED_ITEMS[$1]}" == x ]] || return 0
  send_lines "$ROW_COUNTER_FD" "SELECT format('SELECT format(%L, %s, %s, count(*)) FROM ONLY %s',
    '%s (%s::oid, %s::bigint)', $1, min(c.oid), min(c.oid)::regclass)
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE c.relkind = 'r'
    AND n.nspname || ' ' || c.relname || ' ' || pg_get_userbyid(c.relowner) = $(sql_dollar_quote "$entry")
  HAVING count(*) = 1 \\gexec" || stop_row_counter
}

# stop_row_counter: close the session once it has counted what it was sent.
stop_row_counter() {
  [[ -n "$ROW_COUNTER_FD" ]] || return 0
  exec {ROW_COUNTER_FD}>&-
  ROW_COUNTER_FD=""
  wait "$ROW_COUNTER_PID" 2>/dev/null || true
  ROW_COUNTER_PID=""
}

# end_row_counter: once pg_restore has ended (every "finished item" line read), stop the session;
# LOADED_ROWS = its counts, `(<oid>::oid, <rows>::bigint), ...` (the form tables_sql counted
# takes). -v prints names as they are: a name holding a line break could fake a "finished item"
# line. So a count is kept only for an item reported finished once, and a table counted once.
end_row_counter() {
  local line id oid sep="" counted=0
  local -A pair_of=() counts_of=()
  stop_row_counter
  [[ -f "$PRIVATE_TMP/loaded_rows" ]] || return 0 # (no session was started)
  while IFS= read -r line; do
    [[ "$line" =~ ^([0-9]+)\ (\(([0-9]+)::oid,\ [0-9]+::bigint\))$ ]] || continue
    id="${BASH_REMATCH[1]}" oid="${BASH_REMATCH[3]}"
    [[ "${FINISHED_ITEMS[$id]:-}" == x ]] || continue
    pair_of["$oid"]="${BASH_REMATCH[2]}"
    counts_of["$oid"]+=x
  done <"$PRIVATE_TMP/loaded_rows"
  LOADED_ROWS=""
  for oid in "${!pair_of[@]}"; do
    [[ "${counts_of[$oid]}" == x ]] || continue
    LOADED_ROWS+="$sep${pair_of[$oid]}"
    sep=", "
    counted=$((counted + 1))
  done
  log "rows of $counted of ${#TABLE_DATA_ENTRIES[@]} tables counted as they loaded"
  # (the others are counted after the load; why this session did not count them is worth a line)
  if ((counted < ${#TABLE_DATA_ENTRIES[@]})) && [[ -s "$PRIVATE_TMP/row_counter.err" ]]; then
    warn "the row counter failed to count (the check counts what it did not): $(first_error_line "$PRIVATE_TMP/row_counter.err")"
  fi
}
