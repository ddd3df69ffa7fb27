// deploy/build_engines.sh without a GPU: TensorRT-LLM's tools are replaced by stubs that record
// their command lines, so the script's calls (converter, quantizer, trtllm-build flags) and its
// checks are verified; the real tools run only on a GPU machine.
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { repoRoot } from '../helpers/paths.js';

const script = join(repoRoot, 'deploy', 'build_engines.sh');

describe('deploy/build_engines.sh', () => {
  let dir: string;
  let env: NodeJS.ProcessEnv;
  const log = (): string[] => readFileSync(join(dir, 'calls.log'), 'utf8').trim().split('\n');

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'llm-build-engines-'));
    const bin = join(dir, 'bin');
    const examples = join(dir, 'examples');
    mkdirSync(join(examples, 'llama'), { recursive: true });
    mkdirSync(join(examples, 'quantization'), { recursive: true });
    mkdirSync(bin);
    writeFileSync(join(examples, 'llama', 'convert_checkpoint.py'), '');
    writeFileSync(join(examples, 'quantization', 'quantize.py'), '');
    // python: answers the version query, records script runs and makes --output_dir.
    const recorder = (name: string, marker: string) => `#!/usr/bin/env bash
set -e
if [[ "$1" == "-c" ]]; then echo 0.13.0; exit 0; fi
echo "${name} $*" >> "${join(dir, 'calls.log')}"
while [[ $# -gt 0 ]]; do if [[ "$1" == "--output_dir" ]]; then mkdir -p "$2"; touch "$2/${marker}"; fi; shift; done
`;
    writeFileSync(join(bin, 'python'), recorder('python', 'config.json'));
    writeFileSync(join(bin, 'trtllm-build'), recorder('trtllm-build', 'config.json'));
    chmodSync(join(bin, 'python'), 0o755);
    chmodSync(join(bin, 'trtllm-build'), 0o755);
    mkdirSync(join(dir, 'hf'));
    writeFileSync(join(dir, 'hf', 'config.json'), '{}');
    writeFileSync(join(dir, 'hf', 'tokenizer.model'), '');
    env = { ...process.env, PATH: `${bin}:${process.env.PATH ?? ''}`, PYTHON: join(bin, 'python'), TRTLLM_EXAMPLES: examples };
  });

  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('runs the converter, the AWQ quantizer and trtllm-build with the reference flags', () => {
    execFileSync('bash', [script, join(dir, 'hf'), join(dir, 'engines')], { env, stdio: 'pipe' });
    const calls = log();
    const hf = join(dir, 'hf');
    const ckpt = (v: string) => join(dir, 'engines', 'checkpoints', `llama2-7b-${v}`);
    const converter = join(dir, 'examples', 'llama', 'convert_checkpoint.py');
    const quantizer = join(dir, 'examples', 'quantization', 'quantize.py');
    const build = (v: string) =>
      `trtllm-build --checkpoint_dir ${ckpt(v)} --output_dir ${join(dir, 'engines', `llama2-7b-${v}`)} --gemm_plugin float16 --gpt_attention_plugin float16 --max_batch_size 1 --max_input_len 2048 --max_seq_len 4096 --use_paged_context_fmha enable`;
    expect(calls).toEqual([
      `python ${converter} --model_dir ${hf} --output_dir ${ckpt('fp16')} --dtype float16`,
      build('fp16'),
      `python ${converter} --model_dir ${hf} --output_dir ${ckpt('int8')} --dtype float16 --use_weight_only --weight_only_precision int8`,
      build('int8'),
      `python ${quantizer} --model_dir ${hf} --output_dir ${ckpt('awq')} --dtype float16 --qformat int4_awq --awq_block_size 128 --calib_size 32`,
      build('awq'),
    ]);
    for (const v of ['fp16', 'int8', 'awq']) expect(existsSync(join(dir, 'engines', `llama2-7b-${v}`, 'config.json'))).toBe(true);
  });

  it('keeps engines that exist, rebuilds with FORCE=1, and names what is missing', () => {
    writeFileSync(join(dir, 'calls.log'), '');
    execFileSync('bash', [script, join(dir, 'hf'), join(dir, 'engines'), 'int8'], { env, stdio: 'pipe' });
    expect(readFileSync(join(dir, 'calls.log'), 'utf8')).toBe('');
    execFileSync('bash', [script, join(dir, 'hf'), join(dir, 'engines'), 'int8'], { env: { ...env, FORCE: '1', MAX_BATCH_SIZE: '8' }, stdio: 'pipe' });
    expect(log()[1]).toContain('--max_batch_size 8');
    execFileSync('bash', [script, join(dir, 'hf'), join(dir, 'engines'), 'int8'], { env: { ...env, FORCE: '1', PAGED_CONTEXT_FMHA: 'disable' }, stdio: 'pipe' });
    expect(log().at(-1)).toContain('--use_paged_context_fmha disable');
    const badFmha = spawnSync('bash', [script, join(dir, 'hf'), join(dir, 'out')], { env: { ...env, PAGED_CONTEXT_FMHA: 'on' }, encoding: 'utf8' });
    expect(badFmha.status).toBe(1);
    expect(badFmha.stderr).toContain("PAGED_CONTEXT_FMHA must be enable or disable, not 'on'");

    const noTokenizer = join(dir, 'hf-no-tokenizer');
    mkdirSync(noTokenizer);
    writeFileSync(join(noTokenizer, 'config.json'), '{}');
    const missing = spawnSync('bash', [script, noTokenizer, join(dir, 'out')], { env, encoding: 'utf8' });
    expect(missing.status).toBe(1);
    expect(missing.stderr).toContain('has no tokenizer.model');
    const badVariant = spawnSync('bash', [script, join(dir, 'hf'), join(dir, 'out'), 'fp8'], { env, encoding: 'utf8' });
    expect(badVariant.status).toBe(1);
    expect(badVariant.stderr).toContain("unknown variant 'fp8'");
  });
});
