#!/usr/bin/env bash
# cleanup.sh deletes every resource group of pglink's default subscription, and so every
# resource in them: servers' PostgreSQL clusters (and, under root, their OS users) are removed.
# PGLINK_DATA names pglink's data dir (default: data); pglink must be on PATH. Stops at the
# first error.
set -euo pipefail
. "$(dirname "$0")/env.sh" >/dev/null
for g in $(pglink group list --query '[].name' -o tsv); do
  echo "deleting resource group $g"
  pglink group delete -n "$g" --yes --no-wait
done
for _ in $(seq 120); do
  [ -z "$(pglink group list --query '[].name' -o tsv)" ] && { echo "no resource groups left"; exit 0; }
  sleep 1
done
echo "resource groups still being deleted: $(pglink group list --query '[].name' -o tsv)" >&2
exit 1
