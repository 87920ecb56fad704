#!/usr/bin/env bash
# shellcheck shell=bash
# SQL that restore.sh runs, as text. The manifest's JSON is parsed by PostgreSQL itself (the
# postgres image has no jq): create_database_sql, database_state_sql and database_comment_sql
# print psql input, a query that prints the statements to run (names and values quoted by
# quote_ident/quote_literal on the server) followed by \gexec, which runs them in the same session.

# sql_ident NAME: NAME as a quoted SQL identifier.
sql_ident() { printf '"%s"' "${1//\"/\"\"}"; }

# settings_cte SETTINGS_JSON: `WITH s AS (SELECT <json>::jsonb AS j)`.
settings_cte() { printf 'WITH s AS (SELECT %s::jsonb AS j)\n' "$(sql_dollar_quote "$1")"; }

# create_database_sql NAME SETTINGS_JSON: CREATE DATABASE from template0 with the recorded owner,
# encoding and locale (clauses left out when the settings do not name them).
create_database_sql() {
  local name
  name="$(sql_literal "$1")"
  settings_cte "$2"
  cat <<SQL
SELECT 'CREATE DATABASE ' || quote_ident($name) || ' WITH TEMPLATE template0'
  || CASE WHEN j->>'owner' IS NOT NULL THEN ' OWNER ' || quote_ident(j->>'owner') ELSE '' END
  || CASE WHEN j->>'encoding' IS NOT NULL THEN ' ENCODING ' || quote_literal(j->>'encoding') ELSE '' END
  || CASE WHEN j->>'collate' IS NOT NULL THEN ' LC_COLLATE ' || quote_literal(j->>'collate') ELSE '' END
  || CASE WHEN j->>'ctype' IS NOT NULL THEN ' LC_CTYPE ' || quote_literal(j->>'ctype') ELSE '' END
  || CASE j->>'locale_provider'
       WHEN 'i' THEN ' LOCALE_PROVIDER icu ICU_LOCALE ' || quote_literal(j->>'icu_locale')
         || CASE WHEN j->>'icu_rules' IS NOT NULL
                 THEN ' ICU_RULES ' || quote_literal(j->>'icu_rules') ELSE '' END
       WHEN 'b' THEN ' LOCALE_PROVIDER builtin BUILTIN_LOCALE ' || quote_literal(j->>'icu_locale')
       ELSE '' END
FROM s \gexec
SQL
}

# database_state_sql NAME SETTINGS_JSON: what pg_restore does not bring back: connection limit,
# the database ACL (CONNECT/CREATE/TEMP grants), ALTER DATABASE .. SET and
# ALTER ROLE .. IN DATABASE .. SET. List-valued settings (search_path, ...) are quoted per
# element, as pg_dump does.
database_state_sql() {
  local name
  name="$(sql_literal "$1")"
  settings_cte "$2"
  cat <<SQL
, stmts AS (
  SELECT 1 AS o, 0::bigint AS n, 'ALTER DATABASE ' || quote_ident($name) || ' CONNECTION LIMIT '
         || (j->>'connection_limit')::int || ';' AS stmt
  FROM s WHERE coalesce(j->>'connection_limit', '-1') <> '-1'
  UNION ALL
  SELECT 2, 0, 'REVOKE ALL ON DATABASE ' || quote_ident($name) || ' FROM PUBLIC;'
  FROM s WHERE j->>'datacl' IS NOT NULL
  UNION ALL
  SELECT 2, 1, 'REVOKE ALL ON DATABASE ' || quote_ident($name) || ' FROM ' || quote_ident(j->>'owner') || ';'
  FROM s WHERE j->>'datacl' IS NOT NULL AND j->>'owner' IS NOT NULL
  UNION ALL
  SELECT 3, g.ord, 'GRANT ' || (g.e->>'privilege') || ' ON DATABASE ' || quote_ident($name) || ' TO '
         || coalesce(quote_ident(g.e->>'grantee'), 'PUBLIC')
         || CASE WHEN (g.e->>'grantable')::boolean THEN ' WITH GRANT OPTION' ELSE '' END || ';'
  FROM s, jsonb_array_elements(CASE WHEN j->>'datacl' IS NOT NULL THEN j->'grants' ELSE '[]' END)
       WITH ORDINALITY AS g(e, ord)
  UNION ALL
  SELECT 4, x.ord, 'ALTER '
         || CASE WHEN x.e->>'role' IS NULL THEN 'DATABASE ' || quote_ident($name)
                 ELSE 'ROLE ' || quote_ident(x.e->>'role') || ' IN DATABASE ' || quote_ident($name) END
         || ' SET ' || CASE WHEN kv.k ~ '^[A-Za-z_][A-Za-z0-9_.]*$' THEN kv.k ELSE quote_ident(kv.k) END
         || ' = '
         || CASE WHEN lower(kv.k) IN ('search_path', 'temp_tablespaces', 'local_preload_libraries',
                                      'session_preload_libraries', 'shared_preload_libraries',
                                      'unix_socket_directories')
                 THEN (SELECT string_agg(quote_literal(btrim(v, '"')), ', ')
                       FROM regexp_split_to_table(kv.v, ',\s*') AS v)
                 ELSE quote_literal(kv.v) END || ';'
  FROM s, jsonb_array_elements(coalesce(j->'settings', '[]')) WITH ORDINALITY AS x(e, ord),
       LATERAL (SELECT split_part(x.e->>'setting', '=', 1) AS k,
                       substr(x.e->>'setting', strpos(x.e->>'setting', '=') + 1) AS v) AS kv
)
SELECT stmt FROM stmts ORDER BY o, n \gexec
SQL
}

# database_comment_sql NAME SETTINGS_JSON: the recorded comment (or none).
database_comment_sql() {
  settings_cte "$2"
  printf "SELECT 'COMMENT ON DATABASE ' || quote_ident(%s) || ' IS '
  || coalesce(quote_literal(j->>'comment'), 'NULL') FROM s \\gexec\n" "$(sql_literal "$1")"
}

# check_tables_sql TABLES_JSON MODE [COUNTED]: first line, how many tables the manifest lists;
# then one line per table missing, unexpected, or (MODE exact) with a different row count.
# COUNTED: rows already counted, `(<oid>::oid, <rows>::bigint), ...`; the other tables are
# counted here.
check_tables_sql() {
  local manifest_tables compare_rows=false restored
  manifest_tables="jsonb_to_recordset($(sql_dollar_quote "$1")::jsonb) AS t(schema text, name text, rows bigint)"
  restored="$(tables_sql "$2")"
  if [[ "$2" == exact ]]; then
    compare_rows=true
    [[ -z "${3:-}" ]] || restored="$(tables_sql counted "$3")"
  fi
  cat <<SQL
SELECT count(*) FROM $manifest_tables;
WITH m AS (SELECT * FROM $manifest_tables),
     a AS (SELECT * FROM jsonb_to_recordset(($restored)::jsonb)
                    AS t(schema text, name text, rows bigint))
SELECT format('%s.%s: manifest %s rows, restored %s', coalesce(m.schema, a.schema),
              coalesce(m.name, a.name), coalesce(m.rows::text, 'no table'),
              coalesce(a.rows::text, 'no table'))
FROM m FULL JOIN a ON m.schema = a.schema AND m.name = a.name
WHERE m.name IS NULL OR a.name IS NULL OR ($compare_rows AND m.rows <> a.rows)
ORDER BY 1;
SQL
}

# swap_sql LIVE SIDE KEPT SERVER_VERSION_NUM: one transaction: end the sessions of the live and
# side databases, rename live -> KEPT (when KEPT is set), side -> live, allow connections.
swap_sql() {
  local live side kept="$3" terminate="pg_terminate_backend(pid)"
  live="$(sql_ident "$1")"
  side="$(sql_ident "$2")"
  (($4 >= 140000)) && terminate="pg_terminate_backend(pid, 10000)"
  printf 'SELECT count(%s) FROM pg_stat_activity WHERE datname IN (%s, %s) AND pid <> pg_backend_pid();\n' \
    "$terminate" "$(sql_literal "$1")" "$(sql_literal "$2")"
  if [[ -n "$kept" ]]; then
    printf 'ALTER DATABASE %s RENAME TO %s;\n' "$live" "$(sql_ident "$kept")"
    printf 'ALTER DATABASE %s WITH ALLOW_CONNECTIONS true;\n' "$(sql_ident "$kept")"
  fi
  printf 'ALTER DATABASE %s RENAME TO %s;\n' "$side" "$live"
  printf 'ALTER DATABASE %s WITH ALLOW_CONNECTIONS true;\n' "$live"
}
