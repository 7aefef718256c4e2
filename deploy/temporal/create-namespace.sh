#!/bin/sh
# One-shot job (runs in temporalio/admin-tools): waits for the Temporal server, creates the
# namespace if it is missing, then registers each search attribute given as NAME=Type.
#
#   create-namespace.sh LeoSdId=Keyword LeoScore=Double ...
#
# Environment: TEMPORAL_ADDRESS (host:port), DEFAULT_NAMESPACE, MAX_ATTEMPTS (optional), and the
# `temporal` CLI's TEMPORAL_TLS_* client certificate (compose's frontend requires mTLS).
# Idempotent: an existing namespace is kept, and an attribute that is already registered with
# the same type counts as done. Unlike the upstream samples script, every variable used here is
# defined, so `set -u` cannot abort the failure branch.
set -eu

namespace="${DEFAULT_NAMESPACE:-default}"
address="${TEMPORAL_ADDRESS:-temporal:7233}"
max_attempts="${MAX_ATTEMPTS:-30}"
host="${address%:*}"
port="${address##*:}"

attempt=1
until nc -z -w 5 "$host" "$port"; do
  if [ "$attempt" -ge "$max_attempts" ]; then
    echo "Temporal at $address is not reachable after $attempt attempts" >&2
    exit 1
  fi
  echo "Waiting for Temporal at $address ($attempt/$max_attempts) ..."
  attempt=$((attempt + 1))
  sleep 2
done

# As upstream: talk to the server by its IPv4 address (the CLI's resolver may otherwise try an
# address the server does not listen on). Fall back to the name if the lookup finds nothing.
ip="$(getent ahosts "$host" | awk '/STREAM/ && $1 ~ /^[0-9.]+$/ { print $1; exit }')"
if [ -n "$ip" ]; then
  address="$ip:$port"
fi

attempt=1
until temporal operator cluster health --address "$address"; do
  if [ "$attempt" -ge "$max_attempts" ]; then
    echo "Temporal at $address is not healthy after $attempt attempts" >&2
    exit 1
  fi
  echo "Waiting for Temporal to report healthy ($attempt/$max_attempts) ..."
  attempt=$((attempt + 1))
  sleep 2
done

if temporal operator namespace describe --address "$address" -n "$namespace" >/dev/null 2>&1; then
  echo "Namespace '$namespace' exists already"
else
  temporal operator namespace create --address "$address" -n "$namespace"
  echo "Namespace '$namespace' created"
fi

is_registered() {
  temporal operator search-attribute list --address "$address" -n "$namespace" \
    | grep -w -- "$1" | grep -qw -- "$2"
}

for pair in "$@"; do
  name="${pair%%=*}"
  type="${pair#*=}"
  if [ -z "$name" ] || [ "$name" = "$pair" ] || [ -z "$type" ]; then
    echo "Expected NAME=Type, got '$pair'" >&2
    exit 2
  fi
  attempt=1
  # A namespace created a moment ago can take a few seconds to be visible to this call.
  until temporal operator search-attribute create --address "$address" -n "$namespace" \
      --name "$name" --type "$type" || is_registered "$name" "$type"; do
    if [ "$attempt" -ge "$max_attempts" ]; then
      echo "Could not register search attribute $name ($type) after $attempt attempts" >&2
      exit 1
    fi
    attempt=$((attempt + 1))
    sleep 2
  done
  echo "Search attribute $name ($type) registered on '$namespace'"
done
