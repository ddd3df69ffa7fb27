// tritonserver's endpoint access limits on the dev server: --grpc-restricted-protocol and
// --http-restricted-api groups, checked with the SDK (gRPC metadata) and fetch (HTTP headers).
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Status, TritonLlmClient } from '../../sdk/src/index.js';
import { buildDir } from '../helpers/paths.js';
import { TempRepository } from '../helpers/repository.js';
import { runRefusedServer, startServer, type RunningServer } from '../helpers/server.js';

const tiny = join(buildDir, 'models', 'synth-tiny-float16');
const admin = { 'triton-grpc-protocol-admin-key': 'admin-secret' };
const infer = { 'triton-grpc-protocol-infer-key': 'infer-secret' };

/** What a call resolved to, or the code and message it failed with. */
async function outcome<T>(call: Promise<T>): Promise<{ ok: T } | { code: Status; details: string }> {
  try {
    return { ok: await call };
  } catch (e) {
    const error = e as { code: Status; details: string };
    return { code: error.code, details: error.details };
  }
}

describe('restricted protocols and APIs', () => {
  let repository: TempRepository;
  let server: RunningServer;

  beforeAll(async () => {
    repository = new TempRepository().add({ name: 'tiny', checkpointDir: tiny, decoupled: true });
    server = await startServer(repository.dir, [
      '--grpc-restricted-protocol=model-repository,statistics,model-config:Admin-Key=admin-secret',
      '--grpc-restricted-protocol', 'inference:infer-key=infer-secret',
      '--http-restricted-api=model-repository,inference:admin-key=admin-secret',
    ]);
  }, 60_000);

  afterAll(async () => {
    await server?.stop();
    repository?.remove();
  });

  it('answers gRPC calls of a restricted category only with the triton-grpc-protocol- header and its value', async () => {
    const llm = new TritonLlmClient({ url: server.address, model: 'tiny' });
    try {
      // Categories outside every group stay open.
      expect(await llm.serverLive()).toBe(true);
      expect((await llm.serverMetadata()).name).toBe('llm-server');

      for (const headers of [undefined, { 'triton-grpc-protocol-admin-key': 'wrong' }, { 'admin-key': 'admin-secret' }]) {
        expect(await outcome(llm.repositoryIndex(headers ? { headers } : {}))).toEqual({
          code: Status.UNAVAILABLE,
          details: "This protocol is restricted, expecting header 'triton-grpc-protocol-admin-key'",
        });
      }
      const index = await llm.repositoryIndex({ headers: admin });
      expect(index.map((model) => model.name)).toEqual(['tiny']);
      expect(await outcome(llm.modelStatistics('tiny', { headers: infer }))).toMatchObject({ code: Status.UNAVAILABLE });
      expect(await outcome(llm.modelStatistics('tiny', { headers: admin }))).toHaveProperty('ok');

      // Inference (a ModelStreamInfer stream) has its own group; the model's config needs the admin header too.
      const prompt = { prompt: 'Once upon a time', maxTokens: 4 };
      expect(await outcome(llm.generate(prompt, { headers: infer }))).toMatchObject({
        code: Status.UNAVAILABLE,
        details: expect.stringMatching(/restricted, expecting header 'triton-grpc-protocol-admin-key'/),
      });
      const both = { ...admin, ...infer };
      const generated = await llm.generate(prompt, { headers: both });
      expect(generated.text.length).toBeGreaterThan(0);
    } finally {
      llm.close();
    }
  }, 60_000);

  it('answers HTTP requests of a restricted category with 403 unless the header carries the value', async () => {
    const url = server.httpUrl!;
    expect((await fetch(`${url}/v2/health/ready`)).status).toBe(200);
    expect((await fetch(`${url}/v2/models/tiny/config`)).status).toBe(200);  // model-config is restricted on gRPC only

    for (const headers of [{}, { 'admin-key': 'nope' }, { 'triton-grpc-protocol-admin-key': 'admin-secret' }]) {
      const refused = await fetch(`${url}/v2/repository/index`, { method: 'POST', headers });
      expect(refused.status).toBe(403);
      expect(await refused.json()).toEqual({ error: "This API is restricted, expecting header 'admin-key'" });
    }
    const index = await fetch(`${url}/v2/repository/index`, { method: 'POST', headers: { 'Admin-Key': 'admin-secret' } });
    expect(index.status).toBe(200);

    const body = JSON.stringify({ text_input: 'Once upon a time', max_tokens: 4 });
    expect((await fetch(`${url}/v2/models/tiny/generate`, { method: 'POST', body })).status).toBe(403);
    const generated = await fetch(`${url}/v2/models/tiny/generate`, { method: 'POST', body, headers: { 'admin-key': 'admin-secret' } });
    expect(generated.status).toBe(200);
    expect(((await generated.json()) as { text_output: string }).text_output.length).toBeGreaterThan(0);
  }, 60_000);

  it('refuses malformed groups at startup with tritonserver\'s wording', () => {
    const run = (...args: string[]): { status: number | null; stderr: string } => runRefusedServer(repository.dir, args);
    expect(run('--grpc-restricted-protocol=model-repository,health:k1=v1', '--grpc-restricted-protocol=metadata,health:k2=v2'))
      .toMatchObject({ status: 2, stderr: expect.stringMatching(/protocol 'health' can not be specified in multiple config groups/) });
    expect(run('--http-restricted-api=inference,metrics:k=v'))
      .toMatchObject({ status: 2, stderr: expect.stringMatching(/unknown restricted protocol 'metrics' .*allowed: health, metadata, inference/) });
    expect(run('--grpc-restricted-protocol=inference:k'))
      .toMatchObject({ status: 2, stderr: expect.stringMatching(/expected <category>,<category>,\.\.\.:<key>=<value>/) });
    expect(run('--grpc-restricted-protocol=inference:k='))
      .toMatchObject({ status: 2, stderr: expect.stringMatching(/cannot be empty/) });
    expect(run('--grpc-restricted-protocol=inference:bad key=v'))
      .toMatchObject({ status: 2, stderr: expect.stringMatching(/header key 'bad key' may hold only/) });
  }, 60_000);
});
