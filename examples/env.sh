# env.sh sets up a shell to talk to pglink's ARM API with curl: source it (". examples/env.sh")
# or paste it. It reads bootstrap.json from PGLINK_DATA (default: data), signs in as the
# administrator service principal and defines ARM, SUB, CA, TOKEN and three helpers.
B=${PGLINK_DATA:-data}/bootstrap.json
j() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$B" "$1"; }
ARM=$(j armEndpoint) SUB=$(j subscriptionId) CA=$(j caCertFile)
TOKEN=$(curl -sS --fail-with-body --cacert "$CA" "$ARM/$(j tenantId)/oauth2/v2.0/token" \
  -d grant_type=client_credentials -d client_id="$(j clientId)" --data-urlencode client_secret="$(j clientSecret)" \
  -d scope="$ARM/.default" | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
# arm METHOD PATH [BODY] sends one ARM request and prints the response body; on an HTTP error it
# prints the ARM error to stderr and fails.
arm() {
  local out
  out=$(curl -sS --fail-with-body --cacert "$CA" -H "Authorization: Bearer $TOKEN" \
    -H 'Content-Type: application/json' -X "$1" "$ARM$2" ${3:+-d "$3"}) || { echo "$1 $2: $out" >&2; return 1; }
  echo "$out"
}
# field NAME prints a field of the JSON document on stdin, e.g. "field properties.state" or
# "field value.0.name".
field() {
  python3 -c 'import json,sys
d = json.load(sys.stdin)
for k in sys.argv[1].split("."): d = d[int(k)] if isinstance(d, list) else d[k]
print(d)' "$1"
}
# wait_for PATH NAME VALUE polls the resource at PATH until its field NAME is VALUE (2 minutes
# at most).
wait_for() {
  for _ in $(seq 120); do
    [ "$(arm GET "$1" | field "$2")" = "$3" ] && return 0
    sleep 1
  done
  echo "timed out waiting for $2 = $3 on $1" >&2
  return 1
}
