#!/usr/bin/env bash
# cleanup.sh deletes every resource group of pglink's default subscription, and so every
# resource in them: servers' PostgreSQL clusters (and, under root, their OS users) are removed.
# PGLINK_DATA names pglink's data dir (default: data). Stops at the first error.
set -euo pipefail
. "$(dirname "$0")/env.sh"
groups() { arm GET "/subscriptions/$SUB/resourcegroups?api-version=2021-04-01" | python3 -c 'import json,sys
for g in json.load(sys.stdin)["value"]: print(g["name"])'; }
for g in $(groups); do
  echo "deleting resource group $g"
  arm DELETE "/subscriptions/$SUB/resourcegroups/$g?api-version=2021-04-01" >/dev/null
done
for _ in $(seq 120); do
  [ -z "$(groups)" ] && { echo "no resource groups left"; exit 0; }
  sleep 1
done
echo "resource groups still being deleted: $(groups)" >&2
exit 1
