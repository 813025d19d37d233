#!/usr/bin/env bash
# walkthrough.sh runs the README's walkthrough against a running pglink (PGLINK_DATA names its
# data dir; default: data) and stops at the first error. Everything after the "steps" line is
# the README's walkthrough, word for word (e2e/readme_test.go checks it and runs this script).
set -euo pipefail
. "$(dirname "$0")/env.sh"
# steps
SUBS=/subscriptions/$SUB
DB=$SUBS/resourceGroups/db-rg NET=$SUBS/resourceGroups/net-rg
RGV=api-version=2021-04-01 PGV=api-version=2024-08-01 NWV=api-version=2022-01-01

# 1. A database administrator creates a resource group and a flexible server (with the newest
#    PostgreSQL installed on this host) and waits until it is Ready.
arm PUT "$DB?$RGV" '{"location":"eastus"}'
SRV=$DB/providers/Microsoft.DBforPostgreSQL/flexibleServers/orders-db
arm PUT "$SRV?$PGV" '{"location":"eastus","properties":{"administratorLogin":"pgadmin","administratorLoginPassword":"S3cret-pass!"}}'
wait_for "$SRV?$PGV" properties.state Ready

# 2. A network administrator creates a virtual network and a private endpoint in it that asks
#    to connect to the server (a manual request, with a message).
arm PUT "$NET?$RGV" '{"location":"eastus"}'
VNET=$NET/providers/Microsoft.Network/virtualNetworks/app-vnet
arm PUT "$VNET?$NWV" '{"location":"eastus","properties":{"addressSpace":{"addressPrefixes":["10.0.0.0/16"]},"subnets":[{"name":"pe","properties":{"addressPrefix":"10.0.1.0/24"}}]}}'
PE=$NET/providers/Microsoft.Network/privateEndpoints/app-pe
arm PUT "$PE?$NWV" '{"location":"eastus","properties":{"subnet":{"id":"'"$VNET"'/subnets/pe"},"manualPrivateLinkServiceConnections":[{"name":"orders","properties":{"privateLinkServiceId":"'"$SRV"'","groupIds":["postgresqlServer"],"requestMessage":"for the orders app"}}]}}'

# 3. The database administrator sees a Pending connection named app-pe.<guid> and approves it
#    with a description.
arm GET "$SRV/privateEndpointConnections?$PGV"
PEC=$SRV/privateEndpointConnections/$(arm GET "$SRV/privateEndpointConnections?$PGV" | field value.0.name)
arm PUT "$PEC?$PGV" '{"properties":{"privateLinkServiceConnectionState":{"status":"Approved","description":"approved by the DBA team"}}}'
wait_for "$PEC?$PGV" properties.provisioningState Succeeded

# 4. The private endpoint mirrors the new state, and a client connects through it (TLS,
#    verified against the pglink CA).
arm GET "$PE?$NWV" | field properties.manualPrivateLinkServiceConnections.0.properties.privateLinkServiceConnectionState.status
ADDR=$(arm GET "$PE?$NWV" | field properties.dataPlane.address)
PGPASSWORD='S3cret-pass!' psql "host=${ADDR%:*} port=${ADDR#*:} user=pgadmin dbname=postgres sslmode=verify-full sslrootcert=$CA" -c 'select current_user'

# 5. The public endpoint admits a client only while public access is Enabled and a firewall
#    rule covers its address.
arm PUT "$SRV/firewallRules/local?$PGV" '{"properties":{"startIpAddress":"127.0.0.1","endIpAddress":"127.0.0.1"}}'
wait_for "$SRV?$PGV" properties.state Ready
PUB=$(arm GET "$SRV?$PGV" | field properties.dataPlane.address)
PGPASSWORD='S3cret-pass!' psql "host=${PUB%:*} port=${PUB#*:} user=pgadmin dbname=postgres sslmode=verify-full sslrootcert=$CA" -c 'select 1'
arm PATCH "$SRV?$PGV" '{"properties":{"network":{"publicNetworkAccess":"Disabled"}}}'
wait_for "$SRV?$PGV" properties.state Ready
{ PGPASSWORD='S3cret-pass!' psql "host=${PUB%:*} port=${PUB#*:} user=pgadmin dbname=postgres sslmode=verify-full sslrootcert=$CA" -c 'select 1' 2>&1 || true; } | grep 'public network access'

# 6. The activity log says who did what, when, and why.
arm GET "$SUBS/providers/Microsoft.Insights/eventtypes/management/values?api-version=2015-04-01&\$filter=eventTimestamp%20ge%20'2020-01-01T00:00:00Z'%20and%20resourceGroupName%20eq%20'db-rg'" \
  | python3 -c 'import json,sys
for e in json.load(sys.stdin)["value"]:
    print(e["eventTimestamp"], e["caller"], e["operationName"]["value"], e["status"]["value"], e["description"])'
