#!/usr/bin/env bash
# walkthrough.sh runs the README's walkthrough against a running pglink (PGLINK_DATA names its
# data dir; default: data) with pglink on PATH, and stops at the first error. Everything after
# the "steps" line is the README's walkthrough, word for word (e2e/readme_test.go checks it and
# runs this script).
set -euo pipefail
. "$(dirname "$0")/env.sh"
# steps
# 1. A database administrator creates a resource group and a flexible server (with the newest
#    PostgreSQL installed on this host); create returns once the server is Ready.
pglink group create -n db-rg -l eastus -o table
pglink postgres flexible-server create -g db-rg -n orders-db --admin-user pgadmin --admin-password 'S3cret-pass!' -o table
SRV=$(pglink postgres flexible-server show -g db-rg -n orders-db --query id -o tsv)

# 2. A network administrator creates a virtual network and a private endpoint in it that asks
#    to connect to the server (a manual request, with a message).
pglink group create -n net-rg -l eastus -o table
pglink network vnet create -g net-rg -n app-vnet --address-prefix 10.0.0.0/16 --subnet-name pe --subnet-prefix 10.0.1.0/24 -o none
pglink network private-endpoint create -g net-rg -n app-pe --vnet-name app-vnet --subnet pe \
  --private-connection-resource-id "$SRV" --group-id postgresqlServer --connection-name orders \
  --manual-request --request-message "for the orders app" -o table

# 3. The database administrator sees a Pending connection named app-pe.<guid> and approves it
#    with a description (the last command is the seed's, as written).
pglink postgres flexible-server private-endpoint-connection list -g db-rg -s orders-db --status Pending -o table
CONNECTION=$(pglink postgres flexible-server private-endpoint-connection list -g db-rg -s orders-db --status Pending --query '[0].name' -o tsv)
pglink network private-endpoint-connection approve --description "approved by the DBA team" --resource-group db-rg --resource-name orders-db --type Microsoft.DBforPostgreSQL/flexibleServers --name "$CONNECTION"

# 4. The private endpoint mirrors the new state, and a client connects through it (TLS,
#    verified against the pglink CA).
pglink network private-endpoint show -g net-rg -n app-pe -o table
ADDR=$(pglink network private-endpoint show -g net-rg -n app-pe --query dataPlane.address -o tsv)
PGPASSWORD='S3cret-pass!' psql "host=${ADDR%:*} port=${ADDR#*:} user=pgadmin dbname=postgres sslmode=verify-full sslrootcert=$CA" -c 'select current_user'

# 5. The public endpoint admits a client only while public access is Enabled and a firewall
#    rule covers its address. --dry-run shows what a change would do, without doing it.
pglink postgres flexible-server firewall-rule create -g db-rg -n orders-db -r local --start-ip-address 127.0.0.1 -o table
PUB=$(pglink postgres flexible-server show -g db-rg -n orders-db --query dataPlane.address -o tsv)
PGPASSWORD='S3cret-pass!' psql "host=${PUB%:*} port=${PUB#*:} user=pgadmin dbname=postgres sslmode=verify-full sslrootcert=$CA" -c 'select 1'
pglink postgres flexible-server update -g db-rg -n orders-db --public-access Disabled --dry-run -o table
pglink postgres flexible-server update -g db-rg -n orders-db --public-access Disabled -o table
{ PGPASSWORD='S3cret-pass!' psql "host=${PUB%:*} port=${PUB#*:} user=pgadmin dbname=postgres sslmode=verify-full sslrootcert=$CA" -c 'select 1' 2>&1 || true; } | grep 'public network access'

# 6. The activity log says who did what, when, and why.
pglink monitor activity-log list -g db-rg --offset 1h \
  --query '[].{time:eventTimestamp, caller:caller, operation:operationName.value, status:status.value, description:description}' -o table
