#!/usr/bin/env bash
# inventory.sh — list what is on the backup volume: one JSON object per line per backup set
# (complete or not), per other folder holding sets and per legacy .sql.gz dump, then one line
# about the volume itself.
# PGDATABASE, when set, limits the list to that database. Runs in the postgres or the aws-cli
# image (bash and coreutils only: no find, no jq).
# shellcheck source-path=SCRIPTDIR
set -euo pipefail
SCRIPT_DIR="$(dirname "${BASH_SOURCE[0]}")"
# shellcheck source=common.sh
source "$SCRIPT_DIR/common.sh"
SUMMARY_EVENT=inventory

[[ -d "$BACKUP_DIR" ]] || die "$EX_NOT_FOUND" "BACKUP_DIR $BACKUP_DIR does not exist" \
  "mount the backup volume there (or set BACKUP_DIR)"

# set_line DB ID PATH COMPLETE [STATUS]: one set as JSON (STATUS of an incomplete one, default
# incomplete).
set_line() {
  local db="$1" id="$2" path="$3" complete="$4" manifest="$3/manifest.json" status bytes finished
  status="${5:-incomplete}"
  bytes=""
  finished=""
  if [[ "$complete" == true && -f "$manifest" ]]; then
    status="$(manifest_field "$manifest" status || echo unknown)"
    bytes="$(manifest_field "$manifest" total_bytes || true)"
    finished="$(manifest_field "$manifest" finished_at || true)"
  else
    complete=false
  fi
  [[ "$bytes" =~ ^[0-9]+$ ]] || bytes="$(dir_bytes "$path")"
  printf '{"database":%s,"id":%s,"kind":"set","bytes":%s,"status":%s,"finished_at":%s,"complete":%s,"path":%s}\n' \
    "$(json_string "$db")" "$(json_string "$id")" "${bytes:-0}" "$(json_string "$status")" \
    "$(if [[ -n "$finished" ]]; then json_string "$finished"; else echo null; fi)" "$complete" \
    "$(json_string "$path")"
}

for db_path in "$BACKUP_DIR"/*/; do
  [[ -d "$db_path" ]] || continue
  db="$(basename "$db_path")"
  [[ -z "${PGDATABASE:-}" || "$db" == "$PGDATABASE" ]] || continue
  for set_path in "$db_path"*/; do
    [[ -d "$set_path" ]] || continue
    name="$(basename "$set_path")"
    if is_backup_id "$name"; then
      set_line "$db" "$name" "${set_path%/}" true
    elif [[ "$name" == *.partial ]] && is_backup_id "${name%.partial}"; then
      set_line "$db" "${name%.partial}" "${set_path%/}" false
    elif [[ "$name" == *.corrupt ]] && is_backup_id "${name%.corrupt}"; then
      set_line "$db" "${name%.corrupt}" "${set_path%/}" false corrupt # set aside by upload.sh
    fi
  done
done

# What else holds sets on the volume, one line per folder: other stacks' sets fetched for a
# rehearsal (.stacks, see sets_folder) and, when the list is limited to PGDATABASE, the other
# databases' folders.
others=("$BACKUP_DIR"/.stacks/*/*/)
[[ -z "${PGDATABASE:-}" ]] || others+=("$BACKUP_DIR"/*/)
for db_path in "${others[@]}"; do
  [[ -d "$db_path" ]] || continue
  folder="${db_path#"$BACKUP_DIR"/}"
  folder="${folder%/}"
  [[ "$folder" != "${PGDATABASE:-}" ]] || continue
  sets=0
  for set_path in "$db_path"*/; do
    name="$(basename "$set_path")"
    if [[ -d "$set_path" ]] && is_backup_id "${name%.partial}"; then sets=$((sets + 1)); fi
  done
  ((sets > 0)) || continue
  printf '{"event":"folder","folder":%s,"sets":%d,"bytes":%s}\n' \
    "$(json_string "$folder")" "$sets" "$(dir_bytes "$db_path")"
done

# The system this replaces wrote single-file dumps at the top of the volume.
for file in "$BACKUP_DIR"/*.sql.gz "$BACKUP_DIR"/*/*.sql.gz; do
  [[ -f "$file" ]] || continue
  printf '{"database":null,"id":%s,"kind":"legacy","bytes":%d,"status":"legacy","finished_at":"%s","complete":true,"path":%s}\n' \
    "$(json_string "$(basename "$file")")" "$(stat -c %s -- "$file")" \
    "$(date -u -d "@$(stat -c %Y -- "$file")" +%Y-%m-%dT%H:%M:%SZ)" "$(json_string "$file")"
done

read -r size used avail < <(df -P -B1 -- "$BACKUP_DIR" | sed -n '2p' | tr -s ' ' | cut -d' ' -f2-4)
printf '{"event":"volume","path":%s,"size_bytes":%d,"used_bytes":%d,"avail_bytes":%d}\n' \
  "$(json_string "$BACKUP_DIR")" "$size" "$used" "$avail"
