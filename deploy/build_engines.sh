#!/usr/bin/env bash
# Builds the reference study's three TensorRT-LLM engines of a Hugging Face Llama-2 checkpoint with
# TensorRT-LLM's own tools, on a machine with an NVIDIA GPU and TensorRT-LLM 0.13 (the container of
# deploy/Dockerfile has both):
#
#   fp16  examples/llama/convert_checkpoint.py --dtype float16                                  -> trtllm-build
#   int8  examples/llama/convert_checkpoint.py --use_weight_only --weight_only_precision int8   -> trtllm-build
#   awq   examples/quantization/quantize.py --qformat int4_awq --awq_block_size 128             -> trtllm-build
#
# Usage: deploy/build_engines.sh HF_DIR OUT_DIR [fp16] [int8] [awq]      (default: all three)
# Writes OUT_DIR/llama2-7b-{fp16,int8,awq}/ (config.json + rank0.engine), the engine_dir of
# deploy/model_repository/llama_trtllm_{fp16,int8,awq}. An engine that exists is kept (FORCE=1
# rebuilds it). Intermediate checkpoints go to OUT_DIR/checkpoints/.
#
# Environment: TRTLLM_EXAMPLES (TensorRT-LLM's examples/ folder; default /opt/TensorRT-LLM/examples),
# MAX_BATCH_SIZE (1: the reference study measured batch 1; raise it to batch concurrent requests in
# flight), MAX_INPUT_LEN (2048), MAX_SEQ_LEN (4096, Llama-2's context), CALIB_SIZE (32 samples for AWQ;
# calibration downloads the cnn_dailymail dataset unless it is cached), PYTHON (python3),
# PAGED_CONTEXT_FMHA (enable: what the models' enable_kv_cache_reuse and enable_chunked_context need;
# disable builds engines that refuse both).
set -euo pipefail

usage() { echo "usage: $0 HF_DIR OUT_DIR [fp16] [int8] [awq]" >&2; exit 2; }
[[ $# -ge 2 ]] || usage
hf_dir=$(realpath "$1")
out_dir=$(realpath -m "$2")
shift 2
variants=("$@")
[[ ${#variants[@]} -gt 0 ]] || variants=(fp16 int8 awq)

python=${PYTHON:-python3}
examples=${TRTLLM_EXAMPLES:-/opt/TensorRT-LLM/examples}
max_batch_size=${MAX_BATCH_SIZE:-1}
max_input_len=${MAX_INPUT_LEN:-2048}
max_seq_len=${MAX_SEQ_LEN:-4096}
calib_size=${CALIB_SIZE:-32}
paged_context_fmha=${PAGED_CONTEXT_FMHA:-enable}

fail() { echo "build_engines: error: $*" >&2; exit 1; }
[[ $paged_context_fmha == enable || $paged_context_fmha == disable ]] || fail "PAGED_CONTEXT_FMHA must be enable or disable, not '$paged_context_fmha'"
[[ -f "$hf_dir/config.json" ]] || fail "$hf_dir has no config.json: give a Hugging Face Llama checkpoint folder"
[[ -f "$hf_dir/tokenizer.model" ]] || fail "$hf_dir has no tokenizer.model (the backend's tokenizer_dir needs it)"
[[ -f "$examples/llama/convert_checkpoint.py" ]] || fail "$examples/llama/convert_checkpoint.py not found: set TRTLLM_EXAMPLES to TensorRT-LLM 0.13's examples/ folder"
[[ -f "$examples/quantization/quantize.py" ]] || fail "$examples/quantization/quantize.py not found: set TRTLLM_EXAMPLES"
command -v trtllm-build >/dev/null || fail "trtllm-build is not on PATH: install TensorRT-LLM 0.13 (pip install tensorrt_llm==0.13.0)"
version=$("$python" -c 'import importlib.metadata as m; print(m.version("tensorrt_llm"))' 2>/dev/null) || fail "the tensorrt_llm Python package is not installed"
[[ $version == 0.13.* ]] || echo "build_engines: warning: TensorRT-LLM $version installed; the backend targets 0.13.0 (engines must be built by the TensorRT-LLM release that serves them)" >&2

mkdir -p "$out_dir/checkpoints"
for variant in "${variants[@]}"; do
  checkpoint="$out_dir/checkpoints/llama2-7b-$variant"
  engine="$out_dir/llama2-7b-$variant"
  if [[ -f "$engine/config.json" && -z ${FORCE:-} ]]; then
    echo "build_engines: $engine exists (FORCE=1 rebuilds it)"
    continue
  fi
  echo "build_engines: $variant: checkpoint -> $checkpoint"
  case $variant in
    fp16)
      "$python" "$examples/llama/convert_checkpoint.py" --model_dir "$hf_dir" --output_dir "$checkpoint" --dtype float16 ;;
    int8)
      "$python" "$examples/llama/convert_checkpoint.py" --model_dir "$hf_dir" --output_dir "$checkpoint" --dtype float16 \
        --use_weight_only --weight_only_precision int8 ;;
    awq)
      "$python" "$examples/quantization/quantize.py" --model_dir "$hf_dir" --output_dir "$checkpoint" --dtype float16 \
        --qformat int4_awq --awq_block_size 128 --calib_size "$calib_size" ;;
    *) fail "unknown variant '$variant': use fp16, int8 or awq" ;;
  esac
  echo "build_engines: $variant: trtllm-build -> $engine"
  trtllm-build --checkpoint_dir "$checkpoint" --output_dir "$engine" \
    --gemm_plugin float16 --gpt_attention_plugin float16 \
    --max_batch_size "$max_batch_size" --max_input_len "$max_input_len" --max_seq_len "$max_seq_len" \
    --use_paged_context_fmha "$paged_context_fmha"
  [[ -f "$engine/config.json" ]] || fail "trtllm-build wrote no $engine/config.json"
done
echo "build_engines: done: $(cd "$out_dir" && ls -d llama2-7b-* 2>/dev/null | tr '\n' ' ')"
