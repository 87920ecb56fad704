#!/usr/bin/env bash
# shellcheck shell=bash
# Replaying globals.sql idempotently. Replayed blindly it errors on existing roles and would put
# a rotated password back to its old hash, so: create only the roles that are missing (with their
# attributes, comments and settings), grant memberships that involve a role created here, never
# alter an existing role, skip tablespaces. The file holds password hashes: never printed.

# An identifier as pg_dumpall writes it: plain lowercase, or double-quoted with "" escapes.
readonly GLOBALS_IDENT='("([^"]|"")+"|[a-z_][a-z0-9_$]*)'

# missing_roles FILE: the identifiers (as written in FILE) of the roles the server lacks.
missing_roles() {
  local file="$1" ident list="" sep=""
  while IFS= read -r ident; do
    list+="$sep$(sql_dollar_quote "$ident")"
    sep=", "
  done < <(sed -n 's/^CREATE ROLE \(.*\);$/\1/p' "$file")
  [[ -n "$list" ]] || return 0
  pg_query "$MAINTENANCE_DB" "SELECT ident FROM unnest(ARRAY[$list]::text[]) AS ident
    WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = (parse_ident(ident))[1])"
}

# keep_global_statement STATEMENT: whether a statement of globals.sql is to be replayed, given
# the associative array MISSING of role identifiers this restore creates.
keep_global_statement() {
  local stmt="$1"
  local role_re="^(CREATE ROLE|ALTER ROLE|COMMENT ON ROLE|SECURITY LABEL FOR [^ ]+ ON ROLE) ${GLOBALS_IDENT}[ ;]"
  local member_re="^GRANT $GLOBALS_IDENT TO ${GLOBALS_IDENT}[ ;]"
  local grantee_re=" TO $GLOBALS_IDENT( WITH GRANT OPTION)?;\$"
  if [[ "$stmt" =~ $role_re ]]; then
    [[ -n "${MISSING[${BASH_REMATCH[2]}]:-}" ]]
  elif [[ "$stmt" =~ TABLESPACE ]] && [[ "$stmt" =~ ^(CREATE|ALTER|COMMENT|GRANT|REVOKE) ]]; then
    return 1
  elif [[ "$stmt" =~ $member_re ]]; then
    [[ -n "${MISSING[${BASH_REMATCH[1]}]:-}" || -n "${MISSING[${BASH_REMATCH[3]}]:-}" ]]
  elif [[ "$stmt" =~ ^GRANT\ .*\ ON\ PARAMETER\  ]] && [[ "$stmt" =~ $grantee_re ]]; then
    [[ -n "${MISSING[${BASH_REMATCH[1]}]:-}" ]]
  elif [[ "$stmt" =~ ^SET\  ]]; then
    return 0
  else
    warn "globals.sql: skipped a statement starting '${stmt:0:24}' (not about a role created here)"
    return 1
  fi
}

# apply_globals FILE: replay the roles of FILE that the server lacks, in one transaction.
apply_globals() {
  local file="$1" out="$PRIVATE_TMP/globals.apply.sql" line stmt="" ident count=0
  local missing
  declare -gA MISSING=()
  missing="$(missing_roles "$file")" || exit "$?"
  while IFS= read -r ident; do
    [[ -n "$ident" ]] && MISSING["$ident"]=1 && count=$((count + 1))
  done <<<"$missing"
  if ((count == 0)); then
    log "globals: every role of the backup exists already (none changed)"
    return 0
  fi
  (umask 077 && : >"$out")
  while IFS= read -r line || [[ -n "$line" ]]; do
    if [[ -z "$stmt" && ( -z "$line" || "$line" == --* ) ]]; then
      continue
    fi
    stmt+="${stmt:+$'\n'}$line"
    [[ "$line" == *";" ]] || continue
    if keep_global_statement "$stmt"; then
      printf '%s\n' "$stmt" >>"$out"
    fi
    stmt=""
  done <"$file"
  if ! "${PSQL[@]}" --single-transaction -d "$(conninfo_db "$MAINTENANCE_DB")" -f "$out" \
    >/dev/null 2>"$PRIVATE_TMP/globals.err"; then
    # psql may quote the failing statement: hide any password hash before it reaches a log.
    sed -i -E "s/(PASSWORD )'[^']*'/\\1'***'/g; s/SCRAM-SHA-256\\\$[^ ']*/***/g; s/md5[0-9a-f]{32}/***/g" \
      "$PRIVATE_TMP/globals.err"
    fail_pg_step "creating the missing roles from globals.sql" "$PRIVATE_TMP/globals.err"
  fi
  log "globals: created $count missing roles (existing roles left as they are)"
}
