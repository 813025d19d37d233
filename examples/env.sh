# env.sh sets up a shell for the walkthrough: source it (". examples/env.sh") or paste it. It
# logs the pglink CLI in as the administrator service principal of bootstrap.json (in
# PGLINK_DATA, default: data) and sets CA to the pglink CA certificate, which psql verifies.
DATA=${PGLINK_DATA:-data}
pglink login --bootstrap "$DATA/bootstrap.json" --query '[].{subscription:id, user:user.name}' -o table
CA=$(sed -n 's/.*"caCertFile": *"\([^"]*\)".*/\1/p' "$DATA/bootstrap.json")
