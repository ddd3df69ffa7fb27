// The shipped model_repository/ as users serve it (`npm run serve`): the float16, int8 and AWQ
// models that the README set-up makes all load and generate through the dev server.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TritonLlmClient } from '../../sdk/src/index.js';
import { buildDir, repoRoot } from '../helpers/paths.js';
import { startServer, type RunningServer } from '../helpers/server.js';

const models = ['llama_fp16', 'llama_int8', 'llama_awq'];
const checkpoints = ['synth-110m-float16', 'synth-110m-int8', 'synth-110m-awq'].map((name) => join(buildDir, 'models', name));
const missing = checkpoints.filter((dir) => !existsSync(join(dir, 'config.json')));
if (missing.length > 0) console.warn(`skipped: ${missing.join(', ')} missing; run \`bash scripts/setup.sh\``);

// Triton reads each config.pbtxt as it stands, so the three are copies: this keeps them the same
// model configuration apart from their heading paragraph, name and checkpoint.
it('model_repository/: llama_int8 and llama_awq are configured as llama_fp16 is', () => {
  const configuration = (model: string): string => {
    const lines = readFileSync(join(repoRoot, 'model_repository', model, 'config.pbtxt'), 'utf8').split('\n');
    const afterHeading = lines.indexOf('#');
    expect(afterHeading, `${model}: a heading paragraph ended by a lone '#'`).toBeGreaterThan(0);
    return lines
      .slice(afterHeading)
      .join('\n')
      .replaceAll(model, 'MODEL')
      .replace(/synth-110m-[a-z0-9]+/, 'CHECKPOINT');
  };
  for (const model of ['llama_int8', 'llama_awq']) expect(configuration(model), model).toBe(configuration('llama_fp16'));
});

describe.skipIf(missing.length > 0)('model_repository/ (llama_fp16, llama_int8, llama_awq)', () => {
  let server: RunningServer;
  let client: TritonLlmClient;
  beforeAll(async () => {
    server = await startServer(join(repoRoot, 'model_repository'));
    client = new TritonLlmClient({ url: server.address, model: 'llama_fp16' });
  }, 120_000);
  afterAll(async () => {
    client?.close();
    expect(await server?.stop()).toBe(0);
  });

  it('serves every model, quantized ones included', async () => {
    for (const model of models) {
      const metadata = await client.modelMetadata(model);
      expect(metadata.name).toBe(model);
      const result = await client.generate({ model, prompt: 'Once upon a time', maxTokens: 8, temperature: 0, endId: -1 });
      expect(result.usage.completionTokens, model).toBe(8);
      expect(result.text.length, model).toBeGreaterThan(0);
      expect(result.finishReason, model).toBe('length');
    }
  }, 120_000);
});
