#!/usr/bin/env bash
# Prepares what tools/bench-gpu/device.sh needs, all git-ignored (the call's 64 MiB limit is tight):
#   .bench/kit          a slim device kit: stripped Node, node_modules with only webgpu (linux-x64) and zod,
#                       the Vulkan/GL loader packages (from ../shared/device/pack-devkit.sh's .devkit)
#   .bench/llama-src.tar.xz   llama.cpp source without other GPU backends, models, docs, tests
#   .bench/write_gguf.py      ../shared/device/write_gguf.py
#   .bench-build        this tool and the engine compiled to JS
# Usage, from the project root: bash tools/bench-gpu/prepare.sh [LLAMA_CPP_GIT_BUNDLE]
set -euo pipefail
root=$(git rev-parse --show-toplevel); cd "$root"
for d in .bench-build .bench; do grep -qx "/$d/" .git/info/exclude || echo "/$d/" >> .git/info/exclude; done
[ -d .devkit/debs ] || bash ../shared/device/pack-devkit.sh
rm -rf .bench-build && { npx tsc -p tools/bench-gpu/tsconfig.json || true; }  # emits despite type errors elsewhere
test -f .bench-build/tools/bench-gpu/bench.js
mkdir -p .bench/kit/debs && cp ../shared/device/write_gguf.py .bench/ && cp .devkit/debs/*.deb .bench/kit/debs/
if [ ! -s .bench/kit/node.xz ]; then
  cp "$(readlink -f "$(command -v node)")" /tmp/node-stripped && strip /tmp/node-stripped
  xz -9e -T2 -c /tmp/node-stripped > .bench/kit/node.xz && rm /tmp/node-stripped
fi
if [ ! -s .bench/kit/node_modules.tar.xz ]; then
  tmp=$(mktemp -d) && mkdir -p "$tmp/node_modules"
  cp -r node_modules/webgpu node_modules/zod "$tmp/node_modules/"
  rm -rf "$tmp"/node_modules/webgpu/dist/{win32-*,darwin-*,linux-arm64} "$tmp/node_modules/webgpu/build" "$tmp/node_modules/zod/src"
  find "$tmp/node_modules/zod" \( -name "*.d.ts" -o -name "*.d.cts" -o -name "*.cjs" -o -name "*.map" \) -delete
  strip "$tmp/node_modules/webgpu/dist/linux-x64/dawn.node"
  tar -C "$tmp" -cf - node_modules | xz -9e -T2 > .bench/kit/node_modules.tar.xz && rm -rf "$tmp"
fi
sed 's#\.devkit/#.bench/kit/#g' ../shared/device/remote-setup.sh > .bench/kit/setup.sh
bundle=${1:-node_modules/node-llama-cpp/llama/gitRelease.bundle}
if [ ! -s .bench/llama-src.tar.xz ]; then
  tmp=$(mktemp -d) && git clone -q "$bundle" "$tmp/llama-src"
  (cd "$tmp/llama-src" && rm -rf .git models docs tests benches tools/ui media gguf-py scripts conversion pocs \
    tools/server tools/cli vendor/miniaudio/miniaudio.h \
    ggml/src/ggml-{sycl,vulkan,opencl,hexagon,metal,et,webgpu,openvino,cann,virtgpu,musa,hip,zdnn,kompute})
  tar -C "$tmp" -cf - llama-src | xz -9e -T2 > .bench/llama-src.tar.xz && rm -rf "$tmp"
fi
du -sb .bench .bench-build
echo "tracked + untracked: $(git ls-files -co --exclude-standard -z | du -cb --files0-from=- | tail -1 | cut -f1) bytes"
