#!/bin/sh
# Starts the process this image was built for (CHANGEOVER_SERVICE), with OpenTelemetry preloaded
# so its instrumentations patch pg, http and the NATS client before they load.
set -eu
if [ "${CHANGEOVER_SERVICE:-}" = "node-agent" ]; then
  # The health port the image's HEALTHCHECK probes (the agent serves none unless told a port).
  export AGENT_HEALTH_PORT="${AGENT_HEALTH_PORT:-7110}"
  # A Kubernetes node name (the downward API's spec.nodeName) may hold dots and be up to 253
  # characters; a node id is [A-Za-z0-9_-]{1,64}. Map anything else to '-' and keep 64.
  if [ -n "${NODE_ID:-}" ]; then
    NODE_ID=$(printf '%s' "$NODE_ID" | tr -c 'A-Za-z0-9_-' '-' | cut -c1-64)
    export NODE_ID
  fi
fi
exec node --enable-source-maps --import @changeover/telemetry/otel "services/${CHANGEOVER_SERVICE}/dist/main.js" "$@"
