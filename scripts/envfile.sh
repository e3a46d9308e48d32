#!/usr/bin/env bash
# Reads an environment file the way systemd's EnvironmentFile= does, without running it:
# KEY=VALUE lines; '#' and ';' lines are comments; whitespace around the key and at the ends
# of an unquoted value is dropped; a value in single quotes is taken literally, one in double
# quotes with backslash escapes; '$' is never expanded; a trailing backslash continues the
# line. Values with spaces and '$' therefore mean what the service sees.
#
# usage (sourced):  . scripts/envfile.sh; envfile_load FILE   # sets ENVFILE_KEYS and ENV_<KEY>
#        envfile_get KEY   # prints the value (empty when unset), after envfile_load
#        (run):     scripts/envfile.sh FILE                   # prints KEY<TAB>VALUE lines

envfile_load() {
  local file=$1 line key value logical=
  ENVFILE_KEYS=()
  while IFS= read -r line || [ -n "$line" ]; do
    if [[ "$line" == *\\ ]]; then logical+="${line%\\}"; continue; fi
    line="$logical$line"; logical=
    line="${line#"${line%%[![:space:]]*}"}"
    [[ -z "$line" || "$line" == \#* || "$line" == \;* ]] && continue
    [[ "$line" == *=* ]] || continue
    key="${line%%=*}"; value="${line#*=}"
    key="${key%"${key##*[![:space:]]}"}"
    [[ "$key" =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || continue
    value="${value#"${value%%[![:space:]]*}"}"
    value="${value%"${value##*[![:space:]]}"}"
    if [[ "$value" == \'*\' && ${#value} -ge 2 ]]; then
      value="${value:1:${#value}-2}"
    elif [[ "$value" == \"*\" && ${#value} -ge 2 ]]; then
      value="${value:1:${#value}-2}"
      value=$(printf '%s' "$value" | sed -e 's/\\\(["\\$`]\)/\1/g')
    fi
    printf -v "ENV_$key" '%s' "$value"
    ENVFILE_KEYS+=("$key")
  done < "$file"
}

envfile_get() {
  local v="ENV_$1"
  printf '%s' "${!v-}"
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  set -euo pipefail
  [ $# -eq 1 ] || { echo "usage: $0 FILE" >&2; exit 2; }
  envfile_load "$1"
  for k in "${ENVFILE_KEYS[@]}"; do printf '%s\t%s\n' "$k" "$(envfile_get "$k")"; done
fi
