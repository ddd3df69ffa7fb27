#!/usr/bin/env bash
# Fuzzes every parser of untrusted bytes (backend/fuzz: safetensors files, checkpoint config.json,
# tokenizer.model, UTF-8 and the streaming detokenizer, Triton request tensors; server/fuzz: the dev
# server's config.pbtxt reader) with libFuzzer, ASan and UBSan: builds the targets with clang in
# build-fuzz/ and runs each for SECONDS (default 30) from its seed corpus in
# {backend,server}/fuzz/corpus/<target>/. Prints the executions per target; a crash stops the
# script with the input saved as build-fuzz/crashes/<target>-crash-*.
#   bash scripts/fuzz.sh [SECONDS]        (needs clang: apt-get install clang)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-30}"
targets=(fuzz_safetensors fuzz_checkpoint_config fuzz_tokenizer_model fuzz_utf8 fuzz_request_parser fuzz_model_config)

sudo=""
[[ $(id -u) -ne 0 ]] && sudo="sudo"
apt_install() {
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}
# libFuzzer's runtime, where clang's versions put it (lib/linux/ up to 14, a per-target folder after).
fuzzer_runtime_present() {
  local dir
  dir=$(clang++ -print-resource-dir)
  [[ -f $dir/lib/linux/libclang_rt.fuzzer-x86_64.a || -n $(find "$dir/lib" -name 'libclang_rt.fuzzer*.a' -print -quit 2>/dev/null) ]]
}
if ! command -v clang++ >/dev/null 2>&1; then
  echo "fuzz: installing clang"
  apt_install clang
fi
if ! fuzzer_runtime_present; then
  # Debian 12 and recent Ubuntu ship the sanitizer and libFuzzer runtimes apart from clang, as a
  # recommended package that --no-install-recommends leaves out.
  major=$(clang++ -dumpversion | cut -d. -f1)
  echo "fuzz: installing clang's runtimes (libclang-rt-$major-dev)"
  apt_install "libclang-rt-$major-dev"
fi

echo "fuzz: building (build-fuzz/)"
cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=clang \
  -DCMAKE_CXX_COMPILER=clang++ -DLLM_BUILD_TESTS=OFF -DLLM_BUILD_SERVER=OFF -DLLM_FUZZ=ON >/dev/null
cmake --build build-fuzz --target "${targets[@]}"

mkdir -p build-fuzz/crashes
for target in "${targets[@]}"; do
  corpus="build-fuzz/corpus/$target"  # grows with what the fuzzer finds; the seeds stay untouched
  mkdir -p "$corpus"
  log="build-fuzz/$target.log"
  seeds="backend/fuzz/corpus/$target"
  [[ -d $seeds ]] || seeds="server/fuzz/corpus/$target"
  if ! "build-fuzz/bin/$target" -max_total_time="$seconds" -print_final_stats=1 -rss_limit_mb=2048 \
      -artifact_prefix="build-fuzz/crashes/$target-" "$corpus" "$seeds" >"$log" 2>&1; then
    tail -n 40 "$log"
    echo "fuzz: $target crashed; the input is in build-fuzz/crashes/ (run build-fuzz/bin/$target on it to reproduce)"
    exit 1
  fi
  runs=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$log" | grep -o '[0-9]*$')
  echo "fuzz: $target: $runs executions in ${seconds} s, no crash"
done
