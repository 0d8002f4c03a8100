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
# The services take agent reports by the ten thousand in bursts: 32 MB young-generation semi-spaces (V8's default
# is 16) lets a burst's short-lived objects die there instead of being copied and promoted, which cut
# their CPU by about 15 % in the fleet benchmark. The agent handles a few messages and keeps the default.
YOUNG=""
case "${CHANGEOVER_SERVICE:-}" in registry|rollout|notifier) YOUNG="--max-semi-space-size=32" ;; esac
exec node --enable-source-maps $YOUNG --import @changeover/telemetry/otel "services/${CHANGEOVER_SERVICE}/dist/main.js" "$@"
