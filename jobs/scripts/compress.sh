#!/usr/bin/env bash
# shellcheck shell=bash
# How a set's table data is compressed, both ways. Sourced after common.sh and pg.sh by
# backup_lib.sh (choose and apply a route) and restore_lib.sh (read a set whatever its route).
#
# Routes, recorded in the manifest's "compression":
#   native    pg_dump compresses inside its -j workers: "zstd", "lz4", "gzip" (16+ for zstd/lz4)
#   external  pg_dump 15 has gzip only, which costs most of the backup's time on one core per
#             worker and yields a larger set than zstd. So pg_dump writes the data uncompressed
#             and each <n>.dat is then compressed with the zstd binary (present in the postgres
#             images) into <n>.dat.zst, its sha256 taken from the same stream: "zstd:1 (external)".
#             pg_restore 16+ finds <n>.dat.zst by itself; pg_restore 15 reads each file as the
#             plain <n>.dat through a named pipe fed by zstd -d (no extra disk space; load_dump.sh).
#   none      "none"

# pg_dump_supports METHOD: whether this pg_dump build can compress with METHOD. pg_dump checks
# the compression option before it connects, so probing against a socket that cannot exist
# answers without touching any server.
pg_dump_supports() {
  local out
  command -v pg_dump >/dev/null 2>&1 || return 1
  out="$(pg_dump --compress="$1" --schema-only -f /dev/null \
    -d "host=/nonexistent-pgbackup-probe port=1 dbname=probe connect_timeout=1" 2>&1 || true)"
  ! grep -qi 'compress' <<<"$out"
}

# resolve_compression PG_DUMP_MAJOR: COMPRESSION (auto|zstd|lz4|gzip|none[:level]) ->
# COMPRESS_METHOD (the manifest's "compression"), COMPRESS_ROUTE (native|external), the pg_dump
# arguments COMPRESS_ARGS and, for the external route, ZSTD_LEVEL.
# auto = zstd at level 1 (as fast as gzip -1, smaller than gzip -6): native when this pg_dump has
# it, else external when a zstd binary exists, else gzip inside pg_dump.
resolve_compression() {
  local major="$1" method="${COMPRESSION%%:*}" level=""
  [[ "$COMPRESSION" == *:* ]] && level="${COMPRESSION#*:}"
  [[ -z "$level" || "$level" =~ ^[0-9]+$ ]] ||
    die "$EX_CONFIG" "COMPRESSION level '$level' is not a number" "use e.g. COMPRESSION=zstd:3"
  COMPRESS_ROUTE=native
  case "$method" in
    auto)
      if ((major >= 16)) && pg_dump_supports zstd; then
        method=zstd level=1
      elif command -v zstd >/dev/null 2>&1; then
        method=zstd level=1 COMPRESS_ROUTE=external
      else
        method=gzip level=""
        log "no zstd in this image: compressing with gzip inside pg_dump"
      fi
      ;;
    zstd)
      if ((major < 16)) || ! pg_dump_supports zstd; then
        command -v zstd >/dev/null 2>&1 || die "$EX_CONFIG" \
          "this pg_dump ($(tool_version pg_dump)) cannot compress with zstd and there is no zstd binary" \
          "use COMPRESSION=auto or gzip, or run in the postgres image (it has zstd)"
        COMPRESS_ROUTE=external
      fi
      ;;
    lz4)
      if ((major < 16)) || ! pg_dump_supports lz4; then
        die "$EX_CONFIG" "this pg_dump ($(tool_version pg_dump)) cannot compress with lz4" \
          "use COMPRESSION=auto, zstd or gzip, or run in a postgres:16 (or newer) image"
      fi
      ;;
    gzip | none) ;;
    *) die "$EX_CONFIG" "COMPRESSION '$COMPRESSION' is not one of auto, zstd, lz4, gzip, none" \
      "set COMPRESSION to auto (the best this pg_dump supports)" ;;
  esac
  COMPRESS_METHOD="$method"
  COMPRESS_ARGS=()
  if [[ "$COMPRESS_ROUTE" == external ]]; then
    ZSTD_LEVEL="${level:-1}"
    COMPRESS_METHOD="zstd:$ZSTD_LEVEL (external)"
    COMPRESS_ARGS=("--compress=0")
  elif ((major >= 16)); then
    COMPRESS_ARGS=("--compress=$method${level:+:$level}")
  elif [[ "$method" == none ]]; then
    COMPRESS_ARGS=("--compress=0")
  elif [[ -n "$level" ]]; then
    COMPRESS_ARGS=("--compress=$level")
  fi
}

# fall_back_to_gzip_if_no_room DUMP_DIR_PARENT: the external route holds the uncompressed dump on
# the volume for a moment. With COMPRESSION=auto and less room than the database's size (an
# upper bound: it counts indexes), compress inside pg_dump instead; with zstd asked for, warn.
fall_back_to_gzip_if_no_room() {
  local avail db_bytes
  [[ "$COMPRESS_ROUTE" == external ]] || return 0
  avail="$(df -P -B1 -- "$1" 2>/dev/null | sed -n '2p' | tr -s ' ' | cut -d' ' -f4)"
  db_bytes="$(pg_query "$DB" "SELECT pg_database_size(current_database())")"
  [[ "$avail" =~ ^[0-9]+$ && "$db_bytes" =~ ^[0-9]+$ ]] && ((avail < db_bytes)) || return 0
  if [[ "${COMPRESSION%%:*}" == auto ]]; then
    warn "only $avail bytes free for an uncompressed dump of up to $db_bytes bytes: compressing with gzip inside pg_dump instead of zstd"
    # shellcheck disable=SC2034  # read by backup.sh and backup_lib.sh
    COMPRESS_ROUTE=native COMPRESS_METHOD=gzip COMPRESS_ARGS=()
  else
    warn "only $avail bytes free; the uncompressed dump (up to $db_bytes bytes) may not fit before zstd shrinks it"
  fi
}

# The external route overlaps compression with the dump: pg_dump -v reports each table's data
# file as finished ("finished item <id> TABLE DATA ...", printed by its -j leader once the worker
# has closed the file), and that file is compressed in the background while the other tables are
# still being dumped. Only the last table's file is left to compress after pg_dump ends. Each
# file's sha256 is taken from zstd's output stream and its rows are counted from the same data,
# so nothing is read twice and no table is scanned a second time for its row count.
#
# Per data file <n>.dat, into the folder OUT: <n>.dat.sum (`<sum>  dump/<n>.dat.zst`) and
# <n>.dat.rows (the rows of a table's COPY data, or "-" for a file that is not one).

# compress_data_file FILE OUT: FILE -> FILE.zst with DUMP_JOBS threads, flushed to disk, then
# FILE removed. pg_dump ends each table's COPY data with a `\.` line and two empty lines; every
# other line is one row (COPY escapes newlines inside values).
compress_data_file() {
  local file="$1" out="$2" name lines rows=- sum level=(-"$ZSTD_LEVEL")
  ((ZSTD_LEVEL < 20)) || level=(--ultra -"$ZSTD_LEVEL")
  name="$(basename -- "$file")"
  lines="$(wc -l <"$file")" || return 1
  if [[ "$(tail -c 5 -- "$file" | tr '\n' N)" == '\.NNN' ]]; then
    rows=$((lines - 3))
  fi
  sum="$(zstd -q "${level[@]}" -T"$DUMP_JOBS" -c -- "$file" | tee -- "$file.zst" | sha256_stream)" ||
    return 1
  sync -- "$file.zst" 2>/dev/null || true
  printf '%s\n' "$rows" >"$out/$name.rows" && printf '%s  dump/%s\n' "$sum" "$name.zst" >"$out/$name.sum" &&
    rm -f -- "$file"
}

# dump_compressing DUMP_DIR OUT ERRFILE PG_DUMP_COMMAND...: run the pg_dump command (-v is added),
# compressing each finished table file meanwhile, then the files no message named (large
# objects, or every file with -j 1). ERRFILE gets pg_dump's errors, warnings and anything else
# that is not one of -v's progress lines. Returns pg_dump's exit status; dies when a compression
# fails.
dump_compressing() {
  local dir="$1" out="$2" errfile="$3" fifo="$PRIVATE_TMP/pg_dump.messages"
  local line file name pid dump_rc=0 failed=0 children="${#_CHILD_PIDS[@]}"
  shift 3
  local -A started=()
  local -a workers=()
  mkfifo -m 600 -- "$fifo"
  # (in English whatever the locale: the messages are matched below)
  LC_ALL=C "$@" -v 2>"$fifo" &
  pid=$!
  _CHILD_PIDS+=("$pid")
  while IFS= read -r line; do
    if [[ "$line" != "pg_dump: "* || "$line" =~ ^pg_dump:\ (error|warning|detail|hint): ]]; then
      printf '%s\n' "$line" >>"$errfile"
    fi
    [[ "$line" =~ ^pg_dump:\ finished\ item\ ([0-9]+)\ TABLE\ DATA\  ]] || continue
    name="${BASH_REMATCH[1]}.dat"
    [[ -f "$dir/$name" ]] || continue
    started["$name"]=1
    compress_data_file "$dir/$name" "$out" &
    workers+=("$!")
    _CHILD_PIDS+=("$!")
  done <"$fifo"
  wait "$pid" || dump_rc=$?
  for pid in "${workers[@]}"; do
    if ((dump_rc != 0)); then kill "$pid" 2>/dev/null || true; fi
    wait "$pid" || failed=$((failed + 1))
  done
  _CHILD_PIDS=("${_CHILD_PIDS[@]:0:children}")
  ((dump_rc == 0)) || return "$dump_rc"
  ((failed == 0)) || die_write_failed "compress the dump's data files with zstd"
  for file in "$dir"/*.dat; do
    name="$(basename -- "$file")"
    [[ -f "$file" && "$name" != toc.dat && -z "${started[$name]:-}" ]] || continue
    compress_data_file "$file" "$out" || die_write_failed "compress $file with zstd"
  done
}

# -- restore -------------------------------------------------------------------------------------
# set_is_external_zstd MANIFEST: whether the set's data files are <n>.dat.zst written by zstd.
set_is_external_zstd() {
  [[ "$(manifest_field "$1" compression || true)" == *"(external)"* ]]
}

# pg_restore_reads_zstd: pg_restore 16+ built with zstd (judged by its sibling pg_dump) opens
# <n>.dat.zst itself.
pg_restore_reads_zstd() {
  (($(tool_major pg_restore || echo 0) >= 16)) && pg_dump_supports zstd
}

# require_zstd_reader MANIFEST: refuse (before anything is touched) a set this image cannot read.
require_zstd_reader() {
  set_is_external_zstd "$1" || return 0
  pg_restore_reads_zstd || command -v zstd >/dev/null 2>&1 || die "$EX_CONFIG" \
    "backup $ID is compressed with zstd, and neither pg_restore $(tool_version pg_restore) nor a zstd binary can read it here" \
    "run this step in the postgres image (it has zstd), or install zstd"
}
