# syntax=docker/dockerfile:1
# The clara-operator image, ghcr.io/clara-operator/clara-operator:<version>. docs/image.md says why
# it is built this way; scripts/image-build.ts replays these steps without Docker, and
# test/unit/image/ checks what they produce (CI has no container engine).

# Build: the full toolchain (TypeScript and the rest of the dev dependencies) compiles src/.
FROM node:24.21.0-trixie-slim AS build
WORKDIR /app
COPY package.json package-lock.json tsconfig.json tsconfig.build.json ./
RUN npm ci --no-audit --no-fund
COPY src ./src
RUN npm run build

# Production dependencies only, without install scripts, and without what nothing loads at run
# time: source maps, TypeScript sources and declarations, markdown, and the test, benchmark,
# example and docs folders at the top of a package (89 MB of files down to 42 MB).
FROM node:24.21.0-trixie-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund \
 && find node_modules -type f \( -name '*.map' -o -name '*.ts' -o -name '*.mts' -o -name '*.cts' \
      -o -name '*.md' \) -delete \
 && rm -rf node_modules/*/test node_modules/*/tests node_modules/*/benchmarks \
      node_modules/*/examples node_modules/*/docs node_modules/@*/*/test node_modules/@*/*/benchmarks

# Runtime: distroless Node.js 24 (no shell, no npm, no package manager), user nonroot.
# Everything is owned by root and read-only to the operator; it writes nothing but to stdout, so
# it runs with readOnlyRootFilesystem (the Deployment mounts an emptyDir on /tmp all the same).
FROM gcr.io/distroless/nodejs24-debian13:nonroot AS runtime
WORKDIR /app
COPY package.json ./
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /app/dist/src ./dist/src
COPY launcher/clara_launcher.py ./launcher/clara_launcher.py
# Memory (measured by `npm run bench`, which starts the operator with exactly these settings): two
# glibc malloc arenas and two libuv threads instead of one per core, one V8 helper thread, a 2 MB
# young generation, and V8 tuned for size over speed (the operator waits on I/O, not on CPU); the
# old-space ceiling comes from the Deployment (NODE_OPTIONS).
ENV NODE_ENV=production MALLOC_ARENA_MAX=2 UV_THREADPOOL_SIZE=2
# Numeric, so that runAsNonRoot can verify it.
USER 65532:65532
ENTRYPOINT ["/nodejs/bin/node", "--max-semi-space-size=2", "--v8-pool-size=1", "--optimize-for-size", "dist/src/main.js"]
