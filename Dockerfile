# syntax=docker/dockerfile:1
# One image per process, chosen by the SERVICE build argument:
#   docker build --build-arg SERVICE=registry   -t changeover/registry .
#   docker build --build-arg SERVICE=rollout    -t changeover/rollout .
#   docker build --build-arg SERVICE=notifier   -t changeover/notifier .
#   docker build --build-arg SERVICE=node-agent -t changeover/node-agent .
# The build stages are shared, so building the four images compiles the workspace once.

ARG NODE_IMAGE=node:20-bookworm-slim

# --- every package.json of the workspace (and the lockfile), extracted from the sources: the
# dependency layers below are reused until one of these files changes, and a new workspace
# package needs no edit here.
FROM ${NODE_IMAGE} AS sources
WORKDIR /src
COPY . .
RUN mkdir -p /manifests \
 && cp package.json package-lock.json .npmrc /manifests/ \
 && find . -mindepth 2 -maxdepth 3 -name package.json -not -path '*/node_modules/*' -exec cp --parents {} /manifests/ \;

FROM ${NODE_IMAGE} AS manifests
WORKDIR /app
COPY --from=sources /manifests/ ./

# --- compile the libraries and the four processes (tests and tools are not built)
FROM manifests AS build
# No install scripts: compiling needs none, and the runtime dependencies are plain JavaScript.
RUN npm ci --ignore-scripts
COPY tsconfig.base.json tsconfig.json ./
COPY libs/ libs/
COPY services/ services/
RUN npx tsc -b services/registry services/rollout services/notifier services/node-agent
# Keep only what runs: each package's manifest and compiled output, without tests.
RUN mkdir -p /out \
 && for d in libs/* services/*; do \
      mkdir -p "/out/$d" && cp "$d/package.json" "/out/$d/"; \
      if [ -d "$d/dist" ]; then cp -R "$d/dist" "/out/$d/"; fi; \
    done \
 && find /out -name '*.spec.*' -delete \
 && find /out -name '.tsbuildinfo' -delete

# --- production dependencies of one process only (npm prune --omit=dev, narrowed to its workspace)
FROM manifests AS prod-deps
ARG SERVICE
RUN test -n "${SERVICE}" || (echo "build with --build-arg SERVICE=registry|rollout|notifier|node-agent" >&2; exit 1)
RUN npm ci --omit=dev --ignore-scripts --workspace "services/${SERVICE}" && npm cache clean --force

# --- the dependencies (with any package-local node_modules) plus the compiled output
FROM prod-deps AS assemble
COPY --from=build /out/ ./
COPY deploy/docker/ deploy/docker/

# --- the runtime image: node:20 slim, no compiler, no dev dependencies, non-root
FROM ${NODE_IMAGE} AS runtime
ARG SERVICE
ENV NODE_ENV=production \
    CHANGEOVER_SERVICE=${SERVICE}
WORKDIR /app
COPY --from=assemble /app/ ./
RUN test -f "services/${SERVICE}/dist/main.js" \
 && mkdir -p /var/lib/changeover && chown node:node /var/lib/changeover
# AGENT_STATE_DIR for the agent (module store, journal): a volume in Compose, a hostPath in Kubernetes.
# The image's own unprivileged user (uid 1000).
USER node
EXPOSE 7101 7102 7103 7110
# Liveness on the process's own port (REGISTRY_/ROLLOUT_/NOTIFIER_HTTP_PORT or AGENT_HEALTH_PORT).
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD ["node", "deploy/docker/healthcheck.mjs"]
# start.sh preloads OpenTelemetry and, for the agent, derives a valid node id.
CMD ["sh", "deploy/docker/start.sh"]
