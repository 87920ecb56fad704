#!/usr/bin/env bash
# shellcheck shell=bash
# PostgreSQL helpers for the steps that run in the postgres image (backup, verify, restore).
# Sourced after common.sh. Every client call is non-interactive (-w: never prompt) and bounded
# by a connect timeout, so an unreachable server fails fast with a clear message.

export PGCONNECT_TIMEOUT="${PGCONNECT_TIMEOUT:-10}"
# psql output is read by these scripts as UTF-8 (JSON); pg_dump keeps the database encoding.
# Timeouts a server or role may set for the app are lifted in these sessions, as pg_dump and
# pg_restore lift them in theirs: the session holding the dump's snapshot sits idle in its
# transaction for the whole dump, and a count of a large table may run for minutes. (PostgreSQL
# 17's transaction_timeout is not named: an older server refuses an unknown setting.)
PSQL=(env PGCLIENTENCODING=UTF8
  "PGOPTIONS=${PGOPTIONS:-} -c idle_in_transaction_session_timeout=0 -c statement_timeout=0"
  psql -X -A -t -q -w -v ON_ERROR_STOP=1)

# conninfo_db NAME: a connection string naming database NAME (safe for names with '=' or quotes).
conninfo_db() {
  local name="${1//\\/\\\\}"
  name="${name//\'/\\\'}"
  printf "dbname='%s'" "$name"
}

# pg_error_code ERRFILE: the exit code that fits a libpq/pg_dump/pg_restore error message.
pg_error_code() {
  local file="$1"
  if grep -qiE 'No space left on device|could not extend file|disk full' "$file"; then
    echo "$EX_NO_SPACE"
  elif grep -qiE 'could not connect|connection refused|timeout expired|could not translate host|no route to host|server closed the connection|connection to server .* failed: (FATAL:  the database system is|No such file)' "$file"; then
    echo "$EX_UNREACHABLE"
  elif grep -qiE 'password authentication failed|no password supplied|pg_hba\.conf|permission denied|must be superuser|must be owner' "$file"; then
    echo "$EX_DENIED"
  elif grep -qiE 'database ".*" does not exist' "$file"; then
    echo "$EX_NOT_FOUND"
  else
    echo "$EX_STEP_FAILED"
  fi
}

# pg_error_fix CODE: what the operator should do about an error of that kind.
pg_error_fix() {
  case "$1" in
    "$EX_NO_SPACE") echo "free room on the backup volume (lower RETENTION_DAYS or KEEP_MIN, or grow the PVC) and run again; earlier sets are untouched" ;;
    "$EX_UNREACHABLE") echo "check PGHOST/PGPORT/PGSSLMODE, that the server is up and that this pod may reach it (NetworkPolicy)" ;;
    "$EX_DENIED") echo "check PGUSER and the password Secret (PGPASSWORD_FILE), and that the role may read every object" ;;
    "$EX_NOT_FOUND") echo "check the database name (PGDATABASE)" ;;
    *) echo "see the log lines above for the failing statement or file" ;;
  esac
}

# first_error_line ERRFILE: the most telling line of an error output, on one line.
first_error_line() {
  local line
  line="$(grep -m1 -iE 'error|fatal|failed|could not' "$1" 2>/dev/null || head -n1 "$1" 2>/dev/null || true)"
  line="${line//$'\r'/}"
  printf '%s' "${line:0:300}"
}

# fail_pg_step STEP ERRFILE: relay a failed client step's output to the log and die with the
# exit code its message implies.
fail_pg_step() {
  local step="$1" errfile="$2" code
  if [[ -s "$errfile" ]]; then
    while IFS= read -r line; do log "  $line"; done <"$errfile"
  fi
  code="$(pg_error_code "$errfile")"
  die "$code" "$step failed: $(first_error_line "$errfile")" "$(pg_error_fix "$code")"
}

# pg_query DB SQL: run SQL in DB (tuples only, unaligned) and print the result; dies clearly.
pg_query() {
  local db="$1" sql="$2" err
  init_private_tmp
  err="$PRIVATE_TMP/psql.err"
  if ! "${PSQL[@]}" -d "$(conninfo_db "$db")" -c "$sql" 2>"$err"; then
    fail_pg_step "query on database $db" "$err"
  fi
}

# pg_script DB FILE: run a SQL file in DB in one transaction; dies clearly.
pg_script() {
  local db="$1" file="$2" err
  init_private_tmp
  err="$PRIVATE_TMP/psql.err"
  if ! "${PSQL[@]}" --single-transaction -d "$(conninfo_db "$db")" -f "$file" 2>"$err"; then
    fail_pg_step "SQL on database $db" "$err"
  fi
}

# tool_major TOOL: the major version of a PostgreSQL client tool (e.g. 16).
tool_major() {
  local out
  out="$("$1" --version 2>/dev/null)" || return 1
  [[ "$out" =~ \)\ ([0-9]+) ]] || return 1
  echo "${BASH_REMATCH[1]}"
}

# tool_version TOOL: the full version string a tool reports (e.g. "15.18").
tool_version() {
  local out
  out="$("$1" --version 2>/dev/null)" || return 1
  [[ "$out" =~ \)\ ([0-9]+(\.[0-9]+)?) ]] || return 1
  echo "${BASH_REMATCH[1]}"
}

# sql_literal TEXT: TEXT as a standard SQL string literal.
sql_literal() { printf "'%s'" "${1//\'/\'\'}"; }

# sql_dollar_quote TEXT: TEXT as a dollar-quoted literal whose tag does not occur in TEXT.
sql_dollar_quote() {
  local text="$1" tag="pgb" n=0
  while [[ "$text" == *"\$$tag\$"* ]]; do
    n=$((n + 1))
    tag="pgb$n"
  done
  printf '$%s$%s$%s$' "$tag" "$text" "$tag"
}

# archive_version_of LISTFILE: the archive format version pg_restore --list printed (e.g. 1.14-0).
archive_version_of() {
  sed -n 's/^;[[:space:]]*Dump Version: \([0-9][0-9.-]*\).*/\1/p' "$1" | head -n 1
}

# toc_entry_count LISTFILE: how many entries the archive's table of contents has.
toc_entry_count() {
  grep -cvE '^(;|$)' "$1" || true
}

# tables_sql MODE [PAIRS]: one JSON array [{schema,name,rows}] of the tables whose rows pg_dump
# saves. exact: count(*) of each table, run inside the dump's snapshot; estimate: the planner's
# numbers; counted: the rows given in PAIRS, `(<table oid>, <rows>), ...`, and count(*) for a
# table missing from them. A table's count includes its inheritance children's rows (as count(*)
# does), so the rows given for a table that has children (its own data only) are not used.
tables_sql() {
  local rows="GREATEST(c.reltuples, 0)::bigint" counted=""
  local count="(xpath('/row/c/text()', query_to_xml(format('SELECT count(*) AS c FROM %I.%I',
             n.nspname, c.relname), false, true, '')))[1]::text::bigint"
  case "$1" in
    exact) rows="$count" ;;
    counted)
      rows="coalesce(d.rows, $count)"
      counted="LEFT JOIN (VALUES ${2:-(0::oid, 0::bigint)}) AS d(oid, rows) ON d.oid = c.oid
        AND NOT EXISTS (SELECT 1 FROM pg_inherits i WHERE i.inhparent = c.oid)" ;;
  esac
  cat <<SQL
SELECT coalesce(jsonb_agg(jsonb_build_object('schema', n.nspname, 'name', c.relname, 'rows', $rows)
                ORDER BY n.nspname, c.relname), '[]'::jsonb)::text
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace $counted
WHERE c.relkind = 'r' AND c.relpersistence <> 't'
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname !~ '^pg_(toast|temp_)'
  AND NOT EXISTS (SELECT 1 FROM pg_depend e WHERE e.classid = 'pg_class'::regclass
                  AND e.objid = c.oid AND e.deptype = 'e')
SQL
}

# database_settings_sql SERVER_VERSION_NUM [DBNAME]: the query that returns, as one JSON object, what a
# plain pg_dump leaves out: owner, encoding, locale, ACL (CONNECT grants), comment, connection
# limit, and the ALTER DATABASE / ALTER ROLE .. IN DATABASE settings.
database_settings_sql() {
  local version="$1" which="current_database()"
  [[ -z "${2:-}" ]] || which="$(sql_literal "$2")"
  local locale_cols="'locale_provider', NULL, 'icu_locale', NULL, 'icu_rules', NULL"
  if ((version >= 170000)); then
    locale_cols="'locale_provider', d.datlocprovider, 'icu_locale', d.datlocale, 'icu_rules', d.daticurules"
  elif ((version >= 160000)); then
    locale_cols="'locale_provider', d.datlocprovider, 'icu_locale', d.daticulocale, 'icu_rules', d.daticurules"
  elif ((version >= 150000)); then
    locale_cols="'locale_provider', d.datlocprovider, 'icu_locale', d.daticulocale, 'icu_rules', NULL"
  fi
  cat <<SQL
SELECT jsonb_build_object(
  'owner', pg_get_userbyid(d.datdba),
  'encoding', pg_encoding_to_char(d.encoding),
  'collate', d.datcollate,
  'ctype', d.datctype,
  $locale_cols,
  'connection_limit', d.datconnlimit,
  'comment', shobj_description(d.oid, 'pg_database'),
  'datacl', d.datacl::text,
  'grants', (SELECT coalesce(jsonb_agg(jsonb_build_object(
                 'grantee', CASE WHEN a.grantee = 0 THEN NULL ELSE pg_get_userbyid(a.grantee) END,
                 'privilege', a.privilege_type, 'grantable', a.is_grantable)
               ORDER BY a.grantee, a.privilege_type), '[]'::jsonb)
             FROM aclexplode(d.datacl) a),
  'settings', (SELECT coalesce(jsonb_agg(jsonb_build_object(
                   'role', CASE WHEN s.setrole = 0 THEN NULL ELSE pg_get_userbyid(s.setrole) END,
                   'setting', u.cfg) ORDER BY s.setrole, u.ord), '[]'::jsonb)
               FROM pg_db_role_setting s, unnest(s.setconfig) WITH ORDINALITY AS u(cfg, ord)
               WHERE s.setdatabase = d.oid))::text
FROM pg_database d WHERE d.datname = $which
SQL
}
