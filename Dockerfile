# syntax=docker/dockerfile:1
#
# taskmoe images. Two targets:
#
#   docker build --target cpu -t taskmoe:cpu .   # Node 20 slim, WebAssembly backend
#   docker build --target gpu -t taskmoe:gpu .   # CUDA 11.2 + cuDNN 8, @tensorflow/tfjs-node-gpu
#
# Both run as the non-root user 10001, serve on port 8080, hold the built-in demo model in
# /app/models/demo (the default TASKMOE_MODEL) and have an empty /models directory to mount other
# checkpoints on (TASKMOE_MODEL=/models/NAME). Settings are TASKMOE_* variables (taskmoe --help).
# /data (TASKMOE_DATA_DIR) holds keys.sqlite once API keys or quotas are on: mount a volume there
# to keep keys and counts across restarts.
#
# scripts/image-check.ts replays the cpu target's stages (every COPY, and every npm/node RUN) in a
# clean temporary copy of the repository, starts the server the way CMD does and waits for /readyz.

ARG NODE_IMAGE=node:20-bookworm-slim
# tfjs-node-gpu 4.22 links libtensorflow 2.9, built for CUDA 11.2 and cuDNN 8.1.
ARG CUDA_IMAGE=nvidia/cuda:11.2.2-cudnn8-runtime-ubuntu20.04

# ---- build: compile TypeScript with the dev dependencies, then keep production dependencies only
FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
# --ignore-scripts: nothing to compile yet (prepare runs tsc), and the optional tfjs-node packages
# would download libtensorflow; each target installs the backend it needs below.
RUN npm ci --omit=optional --ignore-scripts
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build
# Production dependencies only (npm ci empties node_modules first). Only better-sqlite3 (API keys
# and quotas) needs its install script here: prebuild-install fetches its native binding.
# tfjs-node-gpu's is run on its own in the gpu-deps stage. Source maps are about 200 MB of the
# tfjs packages and never read at run time.
RUN npm ci --omit=dev --omit=optional --ignore-scripts \
 && npm rebuild better-sqlite3 \
 && find node_modules -name '*.map' -type f -delete

# ---- the files every runtime image holds but node_modules (each target brings its own)
FROM ${NODE_IMAGE} AS app
WORKDIR /app
COPY --from=build /app/package.json /app/package-lock.json ./
COPY --from=build /app/dist ./dist
COPY bin ./bin
COPY web ./web
COPY models/demo ./models/demo

# ---- cpu: Node 20 slim on the WebAssembly backend
FROM ${NODE_IMAGE} AS cpu
RUN groupadd --system --gid 10001 taskmoe \
 && useradd --system --uid 10001 --gid 10001 --home-dir /app --no-create-home --shell /usr/sbin/nologin taskmoe \
 && mkdir -p /models /data && chown 10001:10001 /data
WORKDIR /app
COPY --from=app /app ./
COPY --from=build /app/node_modules ./node_modules
ENV NODE_ENV=production \
    TASKMOE_BACKEND=wasm \
    TASKMOE_HOST=0.0.0.0 \
    PORT=8080 \
    TASKMOE_DATA_DIR=/data \
    TASKMOE_MODEL=/app/models/demo
USER 10001:10001
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=3s --start-period=120s \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.PORT||8080)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
ENTRYPOINT ["node", "/app/bin/taskmoe.js"]
CMD ["serve"]

# ---- node: the Node 20 runtime, copied into the CUDA images below
FROM ${NODE_IMAGE} AS node

# ---- gpu-deps: the production node_modules plus tfjs-node-gpu's native binding and libtensorflow,
# built on the CUDA image's Ubuntu so that its glibc matches the runtime's.
FROM ${CUDA_IMAGE} AS gpu-deps
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ca-certificates python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
COPY --from=node /usr/local/bin/node /usr/local/bin/node
COPY --from=node /usr/local/lib/node_modules/npm /usr/local/lib/node_modules/npm
RUN ln -s ../lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm
WORKDIR /app
COPY package.json package-lock.json ./
# The lockfile's versions, optional packages included, without any install script; then only
# tfjs-node-gpu's (it downloads libtensorflow-gpu and its binding). The CPU-only tfjs-node is
# removed unbuilt: TASKMOE_BACKEND=gpu never loads it.
RUN npm ci --omit=dev --ignore-scripts \
 && npm rebuild @tensorflow/tfjs-node-gpu better-sqlite3 \
 && rm -rf node_modules/@tensorflow/tfjs-node \
 && find node_modules -name '*.map' -type f -delete \
 && npm cache clean --force

# ---- gpu: CUDA 11.2 + cuDNN 8 runtime with Node 20 and tfjs-node-gpu
FROM ${CUDA_IMAGE} AS gpu
RUN groupadd --system --gid 10001 taskmoe \
 && useradd --system --uid 10001 --gid 10001 --home-dir /app --no-create-home --shell /usr/sbin/nologin taskmoe \
 && mkdir -p /models /data && chown 10001:10001 /data
COPY --from=node /usr/local/bin/node /usr/local/bin/node
WORKDIR /app
COPY --from=app /app ./
COPY --from=gpu-deps /app/node_modules ./node_modules
# TF_FORCE_GPU_ALLOW_GROWTH: TensorFlow takes GPU memory as it needs it instead of all of it at start.
ENV NODE_ENV=production \
    TASKMOE_BACKEND=gpu \
    TF_FORCE_GPU_ALLOW_GROWTH=true \
    TF_CPP_MIN_LOG_LEVEL=1 \
    TASKMOE_HOST=0.0.0.0 \
    PORT=8080 \
    TASKMOE_DATA_DIR=/data \
    TASKMOE_MODEL=/app/models/demo \
    TASKMOE_WORKERS=1
USER 10001:10001
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=3s --start-period=300s \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.PORT||8080)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
ENTRYPOINT ["node", "/app/bin/taskmoe.js"]
CMD ["serve"]
