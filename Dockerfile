# syntax=docker/dockerfile:1
# One image for every storycheck process: the producer CLI, the worker, the board and the
# simulator. The compose file (or your orchestrator) picks the command; /app is laid out like the
# repository, so the commands are the ones you would type there:
#   node apps/producer/dist/main.js db migrate | node apps/worker/dist/main.js |
#   node apps/board/dist/main.js | node apps/upstream-sim/dist/main.js --host 0.0.0.0
# The binaries of CONTRACT.md (storycheck, storycheck-worker, …) are on PATH as well.
# No secret is baked in: configuration comes from the environment at run time (.env.example).

ARG NODE_IMAGE=node:20-bookworm-slim

# ---- build: install everything, compile, then cut a production-only copy of each app ----------
FROM ${NODE_IMAGE} AS build
ENV CI=true TURBO_TELEMETRY_DISABLED=1
RUN npm install --global --no-audit --no-fund pnpm@12.4.2
WORKDIR /src
# `pnpm fetch` fills the store from the lockfile alone, so this layer is reused until the
# lockfile changes; the install below then needs nothing from the network.
COPY pnpm-lock.yaml pnpm-workspace.yaml ./
RUN pnpm fetch
COPY . .
RUN pnpm install --frozen-lockfile --prefer-offline \
 && TURBO_TELEMETRY_DISABLED=1 pnpm exec turbo run build --output-logs=errors-only
# `pnpm deploy --prod` writes each app with its `dependencies` only (no devDependencies) into its
# own node_modules; workspace packages are copied in with their dist/ (and db's drizzle/ SQL
# migrations). Of each app only dist/, node_modules/ and package.json are kept, plus the bundled
# demo sample (names of the simulator's default world) for the compose `demo` service. `deploy`
# may read registry metadata that `fetch` does not keep, hence --prefer-offline, not --offline.
# Dropped as well: source maps (ours and the dependencies'), and typescript and @types/*, which
# the lockfile resolves as optional peers of production dependencies (valibot under
# @bull-board/ui, drizzle-orm) but nothing loads at run time (~25 MB).
RUN for app in producer worker board upstream-sim; do \
      pnpm --filter "@storycheck/$app" deploy --prod --prefer-offline "/prod/apps/$app" || exit 1; \
    done \
 && find /prod/apps/*/ -mindepth 1 -maxdepth 1 \
      ! -name dist ! -name node_modules ! -name package.json -exec rm -rf {} + \
 && find /prod -name '*.map' -type f -delete \
 && rm -rf /prod/apps/*/node_modules/.pnpm/typescript@* /prod/apps/*/node_modules/.pnpm/@types+* \
 && chmod 0755 /prod/apps/*/dist/main.js \
 && mkdir -p /prod/packages/devtools/samples \
 && cp packages/devtools/samples/demo-200.txt /prod/packages/devtools/samples/

# ---- runtime: node, tini and the deployed apps; runs as the unprivileged `node` user -----------
FROM ${NODE_IMAGE}
# tini is PID 1: it forwards SIGTERM/SIGINT to node and reaps zombies, so `docker stop` reaches
# the worker's graceful shutdown (node as PID 1 gets no default signal handlers).
RUN apt-get update \
 && apt-get install -y --no-install-recommends tini \
 && rm -rf /var/lib/apt/lists/*
ENV NODE_ENV=production
WORKDIR /app
# Owned by root and read-only for the `node` user that runs it.
COPY --from=build /prod /app
RUN ln -s /app/apps/producer/dist/main.js /usr/local/bin/storycheck \
 && ln -s /app/apps/worker/dist/main.js /usr/local/bin/storycheck-worker \
 && ln -s /app/apps/board/dist/main.js /usr/local/bin/storycheck-board \
 && ln -s /app/apps/upstream-sim/dist/main.js /usr/local/bin/storycheck-sim
USER node
ENTRYPOINT ["/usr/bin/tini", "--"]
# Heap flags: a worker's live heap is ~30-40 MB, but an uncapped V8 grows lazily to ~200 MB RSS
# under load; with these it peaks near 120 MB at concurrency 50 (docs/benchmarks.md).
CMD ["node", "--max-old-space-size=128", "--max-semi-space-size=8", "apps/worker/dist/main.js"]
# For the default command (a worker): apps/worker/dist/healthcheck.js asks the worker's
# GET /healthz when WORKER_HTTP_PORT is set (docker-compose.yml sets it), else checks that its
# Redis (REDIS_URL) answers PING. One script per service, arguments without spaces: podman's
# Docker API splits exec-form healthcheck arguments on spaces. The same check is the compose
# worker's healthcheck; the board and the simulator have their own script.
HEALTHCHECK --interval=30s --timeout=15s --start-period=15s --retries=3 CMD ["node", "apps/worker/dist/healthcheck.js"]
