#!/usr/bin/env bash
# Builds @tensorflow/tfjs-node (TensorFlow's native CPU kernels for tfjs) without downloading
# TensorFlow: the C library comes from the tensorflow_cpu wheel in the machine image's local
# Python package index, whose libtensorflow_cc.so.2 exports TensorFlow's C API.
#
# tfjs-node is an optionalDependency: `npm ci` drops it when its install script cannot download
# libtensorflow, so this script installs the package with scripts off, stages the wheel's
# libraries and C headers in its deps/, and compiles the binding against them.
# Idempotent: a no-op where tfjs-node already loads. Needs pip, unzip, g++, make, python3.
#   TF_WHEEL_VERSION  the tensorflow_cpu version (default 2.21.0)
#   TFJS_NODE_VERSION the tfjs-node version (default 4.22.0, the one package.json pins)
#   FORCE=1           rebuild even if tfjs-node loads
set -euo pipefail
cd "$(dirname "$0")/.."
TF_WHEEL_VERSION=${TF_WHEEL_VERSION:-2.21.0}
TFJS_NODE_VERSION=${TFJS_NODE_VERSION:-4.22.0}
PKG=node_modules/@tensorflow/tfjs-node
log() { echo "build-tfjs-node: $*" >&2; }

loads() { node -e "require('@tensorflow/tfjs-node')" >/dev/null 2>&1; }

if [ "${FORCE:-0}" != 1 ] && loads; then
  log "@tensorflow/tfjs-node already loads; nothing to do (FORCE=1 rebuilds)"
  exit 0
fi

# 1. The package itself, its install script off (it would try to download libtensorflow).
gpu_before=$([ -d node_modules/@tensorflow/tfjs-node-gpu ] && echo yes || echo no)
installed=$(node -p "try { require('./$PKG/package.json').version } catch { '' }")
if [ "$installed" != "$TFJS_NODE_VERSION" ]; then
  log "installing @tensorflow/tfjs-node@$TFJS_NODE_VERSION (scripts off)"
  npm install --no-save --ignore-scripts --no-audit --no-fund "@tensorflow/tfjs-node@$TFJS_NODE_VERSION" >&2
  # npm also brings the other optional package, tfjs-node-gpu, without its binary: it cannot
  # load, and the backend selection would only log it as skipped.
  [ "$gpu_before" = no ] && rm -rf node_modules/@tensorflow/tfjs-node-gpu
fi

# 2. TensorFlow's shared libraries and C headers from the local wheel.
LIB=$PKG/deps/lib
INCLUDE=$PKG/deps/include
if [ ! -f "$LIB/libtensorflow_cc.so.2" ] || [ ! -f "$LIB/libtensorflow_framework.so.2" ] || [ ! -f "$INCLUDE/tensorflow/c/c_api.h" ]; then
  WHEELS=$(mktemp -d)
  trap 'rm -rf "$WHEELS"' EXIT
  log "fetching tensorflow_cpu==$TF_WHEEL_VERSION from the local package index"
  pip download --no-deps --retries 0 --quiet -d "$WHEELS" "tensorflow_cpu==$TF_WHEEL_VERSION" >&2
  WHEEL=$(ls "$WHEELS"/tensorflow_cpu-*.whl)
  rm -rf "$PKG/deps" && mkdir -p "$LIB" "$INCLUDE"
  unzip -q -j -o "$WHEEL" tensorflow/libtensorflow_cc.so.2 tensorflow/libtensorflow_framework.so.2 -d "$LIB"
  # The C API's headers and the few they include from outside tensorflow/c.
  unzip -q -o "$WHEEL" 'tensorflow/include/tensorflow/c/*' 'tensorflow/include/xla/tsl/c/*' \
    'tensorflow/include/tensorflow/core/platform/ctstring*' 'tensorflow/include/tsl/platform/ctstring*' -d "$WHEELS/x"
  cp -r "$WHEELS/x/tensorflow/include/." "$INCLUDE/"
fi
# The names the binding links against (-ltensorflow) and the ones its install script checks for.
ln -sfn libtensorflow_cc.so.2 "$LIB/libtensorflow.so.2"
ln -sfn libtensorflow_cc.so.2 "$LIB/libtensorflow.so.2.9.1"
ln -sfn libtensorflow.so.2 "$LIB/libtensorflow.so"
ln -sfn libtensorflow_framework.so.2 "$LIB/libtensorflow_framework.so"
ln -sfn libtensorflow_framework.so.2 "$LIB/libtensorflow_framework.so.2.9.1"

# 3. A custom library makes the install script build the binding from source (no addon download).
echo '{ "tf-lib": "file:///local/tensorflow_cpu-wheel" }' > "$PKG/scripts/custom-binary.json"

log "compiling the tfjs-node binding (a minute or two)"
npm rebuild @tensorflow/tfjs-node --build-from-source --nodedir=/usr >&2

if ! loads; then
  node -e "require('@tensorflow/tfjs-node')" || true
  log "@tensorflow/tfjs-node still does not load"
  exit 1
fi
log "@tensorflow/tfjs-node $TFJS_NODE_VERSION built against tensorflow_cpu $TF_WHEEL_VERSION"
