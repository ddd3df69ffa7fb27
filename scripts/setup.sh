#!/usr/bin/env bash
# One-step set-up on a fresh Debian/Ubuntu machine: system packages, npm packages, the C++ build
# and the synthetic checkpoints the main job and the tests use. Safe to run again: each step is
# skipped when already done.
set -euo pipefail
cd "$(dirname "$0")/.."

apt_packages=(
  cmake ninja-build g++ pkg-config git
  libsentencepiece-dev nlohmann-json3-dev libgtest-dev libbenchmark-dev
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev libboost-dev libssl-dev curl openssl
  nodejs npm
)
missing=()
for pkg in "${apt_packages[@]}"; do
  # node/npm may come from elsewhere (nvm, NodeSource): only ask apt when the command is absent.
  if [[ $pkg == nodejs || $pkg == npm ]]; then
    command -v "${pkg/nodejs/node}" >/dev/null 2>&1 && continue
  fi
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  sudo=""
  [[ $(id -u) -ne 0 ]] && sudo="sudo"
  echo "setup: installing ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [[ ! -f node_modules/.package-lock.json || package-lock.json -nt node_modules/.package-lock.json ]]; then
  echo "setup: npm ci"
  npm ci --no-audit --no-fund --loglevel=error
fi

echo "setup: building (build/)"
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build

# The Llama-2 vocabulary comes from an MIT-licensed npm package (llama-tokenizer-js); the project
# builds tokenizer.model from it, so nothing is downloaded and Meta's file is never shipped.
# Re-made when the npm lock changes; checkpoints are re-made when the vocabulary changes.
vocab=build/llama2-vocab.json
if [[ ! -f $vocab || package-lock.json -nt $vocab ]]; then
  node scripts/export-llama2-vocab.mjs "$vocab"
fi
for shape in tiny 110m; do
  out=build/models/synth-$shape-float16
  if [[ ! -f $out/config.json || $vocab -nt $out/config.json ]]; then
    echo "setup: synthetic $shape checkpoint -> $out"
    build/bin/llm synth --shape "$shape" --dtype float16 --seed 0 --vocab "$vocab" --out "$out"
  fi
done
# The quantized models of model_repository/ (llama_int8, llama_awq). The synthetic weights are
# random, so any text calibrates AWQ equally well; the README serves as that text.
float=build/models/synth-110m-float16
for quant in int8 awq; do
  out=build/models/synth-110m-$quant
  if [[ ! -f $out/config.json || $float/config.json -nt $out/config.json ]]; then
    echo "setup: quantizing $float -> $out ($quant)"
    # Per-layer progress goes to a log, shown if quantizing fails.
    if ! build/bin/llm quantize --checkpoint "$float" --out "$out" --quant "$quant" \
      $([[ $quant == awq ]] && echo "--calib README.md --calib-samples 4") 2>"$out.log"; then
      cat "$out.log" >&2
      exit 1
    fi
  fi
done
echo "setup: done"
