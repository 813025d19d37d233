#!/usr/bin/env bash
# cli.sh runs the README's "Using the pglink CLI" steps against a running pglink (PGLINK_DATA
# names its data dir; default: data) with pglink on PATH, and stops at the first error.
# Everything after the "steps" line is the README's section, word for word.
set -euo pipefail
# steps
DATA=${PGLINK_DATA:-data}
boot() { sed -n "s/.*\"$1\": *\"\([^\"]*\)\".*/\1/p" "$DATA/bootstrap.json"; }   # a field of bootstrap.json
ENDPOINT=$(boot armEndpoint) CA=$(boot caCertFile)

# 1. Log in as the administrator service principal of bootstrap.json.
pglink login --bootstrap "$DATA/bootstrap.json" -o table
pglink account show --query '{subscription:id, user:user.name, kind:user.type}' -o table
SUB=$(pglink account show --query id -o tsv)

# 2. Resource groups.
pglink group create -n db-team -l eastus --tags team=db -o table
pglink group list -o table

# 3. Roles: the built-in ones, and a custom role.
pglink role definition list --query '[].roleName' -o tsv
pglink role definition create --query roleName -o tsv --role-definition '{
  "Name": "Connection Approver",
  "Description": "Approves and rejects private endpoint connections to flexible servers.",
  "Actions": ["Microsoft.DBforPostgreSQL/flexibleServers/read",
              "Microsoft.DBforPostgreSQL/flexibleServers/privateEndpointConnections/*",
              "Microsoft.DBforPostgreSQL/flexibleServers/privateEndpointConnectionsApproval/action"],
  "AssignableScopes": ["/subscriptions/'"$SUB"'"]}'

# 4. A service principal for automation, with a role on one resource group. The password is
#    printed once: keep it.
{ read -r APP; read -r SECRET; } < <(pglink ad sp create-for-rbac --name db-automation \
  --role "PostgreSQL Flexible Server Administrator" --scopes "/subscriptions/$SUB/resourceGroups/db-team" \
  --query '[appId, password]' -o tsv)
pglink ad sp list --display-name db-automation --query '[].{name:displayName, appId:appId}' -o table
pglink role assignment list --assignee "$APP" --all -o table

# 5. A user who may read everything in the subscription.
pglink ad user create --display-name Dana --password 'Dana-pass-1' --user-principal-name dana@pglink.local \
  --query userPrincipalName -o tsv
pglink role assignment create --assignee dana@pglink.local --role Reader --scope "/subscriptions/$SUB" --query scope -o tsv

# 6. Sign in as them, each in a profile of its own: the service principal reads its group and
#    may not create one; Dana reads the groups.
export PGLINK_CONFIG_DIR=$HOME/.pglink-automation
pglink login --service-principal -u "$APP" -p "$SECRET" --endpoint "$ENDPOINT" --ca-file "$CA" -o none
pglink group show -n db-team --query properties.provisioningState -o tsv
pglink group create -n not-mine -l eastus || echo "refused, as it should be"   # ERROR: (AuthorizationFailed) …
pglink logout
export PGLINK_CONFIG_DIR=$HOME/.pglink-dana
pglink login -u dana@pglink.local -p 'Dana-pass-1' --endpoint "$ENDPOINT" --ca-file "$CA" -o none
pglink group list --query '[].name' -o tsv
pglink logout
unset PGLINK_CONFIG_DIR

# 7. Clean up, as the administrator again.
pglink role assignment delete --assignee "$APP" -g db-team
pglink role assignment delete --assignee dana@pglink.local
pglink ad sp delete --id "$APP"
pglink ad user delete --id dana@pglink.local
pglink role definition delete --name "Connection Approver"
pglink group delete -n db-team --yes
