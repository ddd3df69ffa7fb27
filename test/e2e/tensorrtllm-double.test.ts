// The TensorRT-LLM engine path end to end without a GPU: libtriton_llm_trtllm_double.so is the
// unchanged backend (backend.cpp, request parsing, responses) with the TensorRT-LLM adapter compiled
// against the executor test double (backend/test/tensorrtllm_double/), which answers by itself from
// <engine_dir>/test_double.json. Served by llm-server over gRPC: streamed partial results become
// Triton responses with exactly one final per request, cancellation reaches cancelRequest, executor
// errors become Triton errors with their message. The deploy/ model repository is checked to load
// its settings and to be refused cleanly by a build without TensorRT-LLM.
import * as grpc from '@grpc/grpc-js';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TritonError, TritonLlmClient } from '../../sdk/src/index.js';
import { boolInput, decodeBytesRaw, type InferRequest, output, readInt32s, type StreamResponse, TestClient } from '../helpers/grpc.js';
import { buildDir, repoRoot } from '../helpers/paths.js';
import { TempRepository } from '../helpers/repository.js';
import { startServer, type RunningServer } from '../helpers/server.js';

const tokenizerDir = join(buildDir, 'models', 'synth-tiny-float16');
const failToken = 13;

/** An engine folder as trtllm-build writes it (config.json only: the double loads no weights). */
function engineDir(root: string, name: string, behaviour: Record<string, unknown>): string {
  const dir = join(root, name);
  mkdirSync(dir, { recursive: true });
  writeFileSync(
    join(dir, 'config.json'),
    JSON.stringify({
      version: '0.13.0',
      pretrained_config: { architecture: 'LlamaForCausalLM', dtype: 'float16', vocab_size: 32000, max_position_embeddings: 4096 },
      build_config: { max_input_len: 256, max_seq_len: 1024, max_batch_size: 8 },
    }),
  );
  writeFileSync(join(dir, 'test_double.json'), JSON.stringify({ log: true, ...behaviour }));
  return dir;
}

/** The shipped llm_fp16 config with the double's backend and TensorRT-LLM parameters instead of the CPU ones. */
function trtllmConfig(name: string, engine: string, decoupled: boolean, extra: Record<string, string> = {}): string {
  let text = readFileSync(join(repoRoot, 'model_repository', 'llama_fp16', 'config.pbtxt'), 'utf8');
  text = text.slice(0, text.indexOf('# Backend settings'));
  text = text.replace(/^name: "llama_fp16"/m, `name: "${name}"`).replace(/^backend: "llm"/m, 'backend: "llm_trtllm_double"');
  text = text.replace(/decoupled: true/, `decoupled: ${decoupled}`);
  const parameters: Record<string, string> = {
    engine: 'tensorrtllm',
    engine_dir: engine,
    tokenizer_dir: tokenizerDir,
    batching_strategy: 'inflight_fused_batching',
    kv_cache_free_gpu_mem_fraction: '0.9',
    cancellation_check_period_ms: '20',
    ...extra,
  };
  for (const [key, value] of Object.entries(parameters)) text += `parameters {\n  key: "${key}"\n  value: { string_value: "${value}" }\n}\n`;
  return text;
}

/**
 * NVIDIA's tensorrt_llm model config (tensorrtllm_backend's all_models/inflight_batcher_llm) as
 * fill_template.py leaves it: its tensors and parameters by its own names, optional parameters
 * unfilled, only `backend` changed.
 */
function tensorrtllmBackendConfig(engine: string): string {
  const tensor = (name: string, type: string, dims: string, extra = ''): string =>
    `  {\n    name: "${name}"\n    data_type: ${type}\n    dims: [ ${dims} ]\n${extra}  }`;
  const scalar = (name: string, type: string): string => tensor(name, type, '1', '    reshape: { shape: [ ] }\n    optional: true\n');
  const inputs = [
    tensor('input_ids', 'TYPE_INT32', '-1', '    allow_ragged_batch: true\n'),
    tensor('input_lengths', 'TYPE_INT32', '1', '    reshape: { shape: [ ] }\n'),
    tensor('request_output_len', 'TYPE_INT32', '1'),
    scalar('end_id', 'TYPE_INT32'), scalar('pad_id', 'TYPE_INT32'),
    tensor('stop_words_list', 'TYPE_INT32', '2, -1', '    optional: true\n    allow_ragged_batch: true\n'),
    tensor('bad_words_list', 'TYPE_INT32', '2, -1', '    optional: true\n    allow_ragged_batch: true\n'),
    scalar('beam_width', 'TYPE_INT32'), scalar('temperature', 'TYPE_FP32'), scalar('runtime_top_k', 'TYPE_INT32'),
    scalar('runtime_top_p', 'TYPE_FP32'), scalar('len_penalty', 'TYPE_FP32'), scalar('repetition_penalty', 'TYPE_FP32'),
    scalar('min_length', 'TYPE_INT32'), scalar('presence_penalty', 'TYPE_FP32'), scalar('frequency_penalty', 'TYPE_FP32'),
    scalar('random_seed', 'TYPE_UINT64'), scalar('return_log_probs', 'TYPE_BOOL'),
    tensor('stop', 'TYPE_BOOL', '1', '    optional: true\n'), tensor('streaming', 'TYPE_BOOL', '1', '    optional: true\n'),
  ];
  const outputs = [
    tensor('output_ids', 'TYPE_INT32', '-1, -1'), tensor('sequence_length', 'TYPE_INT32', '-1'),
    tensor('cum_log_probs', 'TYPE_FP32', '-1'), tensor('output_log_probs', 'TYPE_FP32', '-1, -1'),
    tensor('num_input_tokens', 'TYPE_INT32', '1'), tensor('num_output_tokens', 'TYPE_INT32', '1'),
  ];
  const parameters: Record<string, string> = {
    max_beam_width: '1', FORCE_CPU_ONLY_INPUT_TENSORS: 'no', gpt_model_type: 'inflight_fused_batching', gpt_model_path: engine,
    encoder_model_path: '${encoder_engine_dir}', max_tokens_in_paged_kv_cache: '${max_tokens_in_paged_kv_cache}',
    max_attention_window_size: '${max_attention_window_size}', batch_scheduler_policy: 'guaranteed_no_evict',
    kv_cache_free_gpu_mem_fraction: '0.9', enable_trt_overlap: '${enable_trt_overlap}', exclude_input_in_output: 'true',
    cancellation_check_period_ms: '${cancellation_check_period_ms}', enable_kv_cache_reuse: 'false', normalize_log_probs: 'true',
    enable_chunked_context: '${enable_chunked_context}', gpu_device_ids: '${gpu_device_ids}', decoding_mode: 'top_k_top_p',
    lora_cache_gpu_memory_fraction: '${lora_cache_gpu_memory_fraction}',
    executor_worker_path: '/opt/tritonserver/backends/tensorrtllm/trtllmExecutorWorker', medusa_choices: '${medusa_choices}',
    tokenizer_dir: tokenizerDir, guided_decoding_backend: '${guided_decoding_backend}',
  };
  return [
    'name: "tensorrt_llm"', 'backend: "llm_trtllm_double"', 'max_batch_size: 8', 'model_transaction_policy {\n  decoupled: true\n}',
    'dynamic_batching {\n    preferred_batch_size: [ 8 ]\n    max_queue_delay_microseconds: 0\n}',
    `input [\n${inputs.join(',\n')}\n]`, `output [\n${outputs.join(',\n')}\n]`, 'instance_group [\n  {\n    count: 1\n    kind : KIND_CPU\n  }\n]',
    ...Object.entries(parameters).map(([key, value]) => `parameters: {\n  key: "${key}"\n  value: {\n    string_value: "${value}"\n  }\n}`),
  ].join('\n') + '\n';
}

function tokenRequest(model: string, ids: number[], maxTokens: number, stream: boolean): InferRequest {
  return {
    model_name: model,
    inputs: [
      { name: 'input_ids', datatype: 'INT32', shape: [1, ids.length], contents: { int_contents: ids } },
      { name: 'request_output_len', datatype: 'INT32', shape: [1, 1], contents: { int_contents: [maxTokens] } },
      boolInput('streaming', stream),
    ],
    outputs: [{ name: 'output_ids' }, { name: 'sequence_length' }],
  };
}

interface Collected {
  messages: StreamResponse[];
  responses: number[][];
  texts: string[];
  finals: number;
  errors: string[];
}

/** One request on its own ModelStreamInfer call, collected until Triton's final flag. */
function streamOne(client: TestClient, request: InferRequest): Promise<Collected> {
  const call = client.stream();
  const collected: Collected = { messages: [], responses: [], texts: [], finals: 0, errors: [] };
  return new Promise<Collected>((resolve, reject) => {
    call.on('data', (message: StreamResponse) => {
      collected.messages.push(message);
      const response = message.infer_response;
      if (message.error_message) collected.errors.push(message.error_message);
      if (response?.outputs.some((o) => o.name === 'output_ids')) collected.responses.push(readInt32s(output(response, 'output_ids')));
      if (response?.outputs.some((o) => o.name === 'text_output')) collected.texts.push(...decodeBytesRaw(output(response, 'text_output')));
      if (response?.parameters?.['triton_final_response']?.bool_param === true || message.error_message) {
        collected.finals += 1;
        call.end();
      }
    });
    call.on('error', reject);
    call.on('end', () => resolve(collected));
    call.write({ ...request, id: 'one', parameters: { triton_enable_empty_final_response: { bool_param: true } } });
  });
}

describe('TensorRT-LLM engine path (executor test double) on the dev server', () => {
  let scratch: string;
  let repository: TempRepository;
  let server: RunningServer;
  let client: TestClient;
  let llm: TritonLlmClient;

  beforeAll(async () => {
    if (!existsSync(join(tokenizerDir, 'tokenizer.model'))) throw new Error(`${tokenizerDir} is missing: run bash scripts/setup.sh first`);
    scratch = mkdtempSync(join(tmpdir(), 'llm-trtllm-'));
    const fast = engineDir(scratch, 'fast', { tokens_per_response: 2, step_ms: 2, fail_on_prompt_token: failToken, failure_message: '[TensorRT-LLM][ERROR] injected: CUDA out of memory' });
    const slow = engineDir(scratch, 'slow', { tokens_per_response: 1, step_ms: 40 });
    repository = new TempRepository()
      .addRaw('trt', trtllmConfig('trt', fast, true))
      .addRaw('trt_unary', trtllmConfig('trt_unary', fast, false))
      .addRaw('trt_slow', trtllmConfig('trt_slow', slow, true))
      .addRaw('tensorrt_llm', tensorrtllmBackendConfig(fast))
      .addRaw('trt_too_wide', trtllmConfig('trt_too_wide', fast, true, { max_concurrent_requests: '16' }))
      .addRaw('trt_missing', trtllmConfig('trt_missing', join(scratch, 'no-such-engine'), true));
    server = await startServer(repository.dir, ['--log-verbose', '1']);
    client = new TestClient(server.address);
    llm = new TritonLlmClient({ url: server.address, model: 'trt' });
  });

  afterAll(async () => {
    llm?.close();
    client?.close();
    if (server) expect(await server.stop()).toBe(0);
    repository?.remove();
    if (scratch) rmSync(scratch, { recursive: true, force: true });
  });

  it('loads through the engine factory; a missing engine folder is a load error naming it', async () => {
    const index = await client.call<{ models: { name: string; state: string; reason: string }[] }>('RepositoryIndex', {});
    expect(index.models.find((m) => m.name === 'trt')?.state).toBe('READY');
    const missing = index.models.find((m) => m.name === 'trt_missing');
    expect(missing?.state).toBe('UNAVAILABLE');
    expect(missing?.reason).toContain('no-such-engine');
    expect(missing?.reason).toContain('parameter engine_dir');
    expect(missing?.reason).toContain('does not exist; point it at a TensorRT-LLM engine');
    // More concurrent requests than the engine was built for: refused at load, not by the executor.
    const tooWide = index.models.find((m) => m.name === 'trt_too_wide');
    expect(tooWide?.state).toBe('UNAVAILABLE');
    expect(tooWide?.reason).toContain('"max_concurrent_requests" is 16, more than the engine\'s max_batch_size of 8');
    expect(server.output()).toMatch(/loaded tensorrtllm engine: .*fast \(LlamaForCausalLM, float16, max_seq_len 1024/);
  });

  it("serves tensorrtllm_backend's own tensorrt_llm config.pbtxt with only its backend line changed", async () => {
    const index = await client.call<{ models: { name: string; state: string; reason: string }[] }>('RepositoryIndex', {});
    expect(index.models.find((m) => m.name === 'tensorrt_llm')).toMatchObject({ state: 'READY' });
    const request = tokenRequest('tensorrt_llm', [1, 500], 5, true);
    request.inputs.push({ name: 'input_lengths', datatype: 'INT32', shape: [1, 1], contents: { int_contents: [2] } });
    request.outputs = [...(request.outputs ?? []), { name: 'num_input_tokens' }, { name: 'num_output_tokens' }];
    const result = await streamOne(client, request);
    expect(result.errors).toEqual([]);
    expect(result.responses.flat()).toEqual([300, 301, 302, 303, 304]);
    // Token counts in the type this config declares (INT32), sent because the request names them.
    const counts = result.messages.map((m) => m.infer_response).filter((r) => r?.outputs.some((o) => o.name === 'num_output_tokens'));
    expect(counts.every((r) => r!.outputs.find((o) => o.name === 'num_input_tokens')?.datatype === 'INT32')).toBe(true);
    expect(counts.map((r) => readInt32s(output(r!, 'num_input_tokens'))[0])).toEqual(counts.map(() => 2));
    expect(counts.reduce((sum, r) => sum + readInt32s(output(r!, 'num_output_tokens'))[0]!, 0)).toBe(5);
    // What does not apply is logged once by name; unfilled template values count as not set.
    expect(server.output()).toMatch(/model tensorrt_llm: config\.pbtxt: parameter "FORCE_CPU_ONLY_INPUT_TENSORS" \(tensorrtllm_backend\) is ignored/);
    expect(server.output()).toMatch(/parameters left as unfilled template values \("\$\{\.\.\.\}"\), so not set: .*max_tokens_in_paged_kv_cache/);
  });

  it('streams partial results (two tokens per executor response) as Triton responses with exactly one final', async () => {
    const result = await streamOne(client, tokenRequest('trt', [1, 500], 9, true));
    expect(result.errors).toEqual([]);
    expect(result.finals).toBe(1);
    // Token k of the double is 300 + (last prompt id + k) % 100; the final response may be empty.
    expect(result.responses.filter((r) => r.length > 0)).toEqual([[300, 301], [302, 303], [304, 305], [306, 307], [308]]);
    expect(server.output()).toMatch(/enqueueRequest\(\d+\): 2 prompt tokens, maxTokens 9, streaming 1/);
  });

  it('non-streamed requests get one response with every token; text requests the decoded text', async () => {
    const unary = await client.infer(tokenRequest('trt_unary', [1, 500], 7, false));
    expect(readInt32s(output(unary, 'output_ids'))).toEqual([300, 301, 302, 303, 304, 305, 306]);
    expect(readInt32s(output(unary, 'sequence_length'))).toEqual([7]);

    const streamed: string[] = [];
    const stream = llm.stream({ prompt: 'The capital of France is', maxTokens: 12 });
    for await (const chunk of stream) streamed.push(chunk.text);
    const final = await stream.result;
    expect(final.finishReason).toBe('length');
    expect(final.usage.completionTokens).toBe(12);
    expect(streamed.length).toBeGreaterThan(1);
    const whole = await llm.generate({ prompt: 'The capital of France is', maxTokens: 12 });
    expect(streamed.join('')).toBe(whole.text);
    expect(whole.tokenIds).toEqual(final.tokenIds);
  });

  it('a cancelled stream reaches the executor as cancelRequest and frees the request', async () => {
    const slow = new TritonLlmClient({ url: server.address, model: 'trt_slow' });
    try {
      const controller = new AbortController();
      let chunks = 0;
      const before = (server.output().match(/cancelRequest\(/g) ?? []).length;
      await expect(
        (async () => {
          for await (const _ of slow.stream({ prompt: 'A very long story', maxTokens: 800 }, { signal: controller.signal })) {
            if (++chunks === 3) controller.abort();
          }
        })(),
      ).rejects.toSatisfy((e: unknown) => e instanceof TritonError && e.cancelled);
      let after = before;
      for (let i = 0; i < 100 && after === before; ++i) {
        await new Promise((r) => setTimeout(r, 20));
        after = (server.output().match(/cancelRequest\(/g) ?? []).length;
      }
      expect(after).toBe(before + 1);
      // The model serves the next request.
      expect((await slow.generate({ prompt: 'Hi', maxTokens: 2 })).usage.completionTokens).toBe(2);
    } finally {
      slow.close();
    }
  });

  it('executor errors become Triton errors with the message kept, and the model keeps serving', async () => {
    const error = await client.infer(tokenRequest('trt_unary', [1, failToken, 500], 4, false)).then(
      () => null,
      (e: grpc.ServiceError) => e,
    );
    expect(error).not.toBeNull();
    expect(error!.code).toBe(grpc.status.INTERNAL);
    expect(error!.details).toContain('[TensorRT-LLM][ERROR] injected: CUDA out of memory');
    const streamed = await streamOne(client, tokenRequest('trt', [1, failToken], 4, true));
    expect(streamed.finals).toBe(1);
    expect(streamed.errors.join('')).toContain('injected: CUDA out of memory');
    expect(readInt32s(output(await client.infer(tokenRequest('trt_unary', [1, 500], 2, false)), 'output_ids'))).toEqual([300, 301]);
  });

  it('requests beyond the engine are INVALID_ARGUMENT before they reach the executor', async () => {
    const error = await client.infer(tokenRequest('trt_unary', Array.from({ length: 300 }, () => 500), 4, false)).then(
      () => null,
      (e: grpc.ServiceError) => e,
    );
    expect(error?.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(error?.details).toContain('max_input_len of 256');
    // A top_k TensorRT-LLM would clip without a word.
    const wide = tokenRequest('trt_unary', [1, 500], 4, false);
    wide.inputs.push({ name: 'top_k', datatype: 'INT32', shape: [1, 1], contents: { int_contents: [2000] } });
    const clipped = await client.infer(wide).then(() => null, (e: grpc.ServiceError) => e);
    expect(clipped?.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(clipped?.details).toContain('top_k is 2000, more than the 1024 TensorRT-LLM');
  });
});

describe('deploy/model_repository on a build without TensorRT-LLM', () => {
  it('parses every setting and refuses to load with how to build the TensorRT-LLM engine', async () => {
    const server = await startServer(join(repoRoot, 'deploy', 'model_repository'));
    const client = new TestClient(server.address);
    try {
      const index = await client.call<{ models: { name: string; state: string; reason: string }[] }>('RepositoryIndex', {});
      expect(index.models.map((m) => m.name).sort()).toEqual(['llama_trtllm_awq', 'llama_trtllm_fp16', 'llama_trtllm_int8']);
      for (const model of index.models) {
        expect(model.state).toBe('UNAVAILABLE');
        expect(model.reason).toContain('built without TensorRT-LLM');
        expect(model.reason).toContain('-DLLM_WITH_TENSORRTLLM=ON');
      }
    } finally {
      client.close();
      expect(await server.stop()).toBe(0);
    }
  });
});
