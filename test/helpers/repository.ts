// Builds throwaway Triton model repositories from the project's llama_fp16 config.
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { llmCli, repoRoot } from './paths.js';

const templatePath = join(repoRoot, 'model_repository', 'llama_fp16', 'config.pbtxt');

export interface ModelSpec {
  name: string;
  checkpointDir: string;
  decoupled: boolean;
  /** Extra `parameters` entries (key -> string value). */
  parameters?: Record<string, string>;
}

/** config.pbtxt for one model: the shipped llama_fp16 config with name, checkpoint and policy replaced. */
export function modelConfig(spec: ModelSpec): string {
  let text = readFileSync(templatePath, 'utf8');
  text = text.replace(/^name: "llama_fp16"/m, `name: "${spec.name}"`);
  text = text.replace(/decoupled: true/, `decoupled: ${spec.decoupled}`);
  text = text.replace(/(key: "checkpoint_dir"[^\n]*\n\s*value: \{ string_value: )"[^"]*"/, `$1"${spec.checkpointDir}"`);
  for (const [key, value] of Object.entries(spec.parameters ?? {})) {
    text += `\nparameters {\n  key: "${key}"\n  value: { string_value: "${value}" }\n}\n`;
  }
  return text;
}

export class TempRepository {
  readonly dir = mkdtempSync(join(tmpdir(), 'llm-repo-'));

  add(spec: ModelSpec): this {
    mkdirSync(join(this.dir, spec.name, '1'), { recursive: true });
    writeFileSync(join(this.dir, spec.name, 'config.pbtxt'), modelConfig(spec));
    return this;
  }

  addRaw(name: string, config: string): this {
    mkdirSync(join(this.dir, name, '1'), { recursive: true });
    writeFileSync(join(this.dir, name, 'config.pbtxt'), config);
    return this;
  }

  remove(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}

export interface CliResult {
  text: string;
  token_ids: number[];
  prompt_tokens: number;
  finish_reason: string;
}

/** What `llm generate` gives for a greedy request: the reference the server must reproduce. */
export function cliGreedy(checkpointDir: string, prompt: string, maxTokens: number): CliResult {
  const out = execFileSync(
    llmCli,
    ['generate', '--checkpoint', checkpointDir, '--prompt', prompt, '--temperature', '0', '--max-tokens', String(maxTokens), '--json'],
    { encoding: 'utf8' },
  );
  return JSON.parse(out) as CliResult;
}

/** Converts a Hugging Face model from ../shared into a TensorRT-LLM checkpoint under `dir`. */
export function convert(hfDir: string, outDir: string, dtype: string): string {
  execFileSync(llmCli, ['convert', '--hf', hfDir, '--out', outDir, '--dtype', dtype], { stdio: 'pipe' });
  return outDir;
}
