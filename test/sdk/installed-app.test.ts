// The SDK as an app outside this repository gets it: `npm pack` in sdk/, the tarball installed
// into an empty folder, an app type-checked with exactOptionalPropertyTypes under both module
// resolutions users pick (node16 and bundler), compiled, and run against the dev server.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildDir, repoRoot } from '../helpers/paths.js';
import { cliGreedy, TempRepository } from '../helpers/repository.js';
import { startServer, type RunningServer } from '../helpers/server.js';

const tiny = join(buildDir, 'models', 'synth-tiny-float16');
const tsc = join(repoRoot, 'node_modules', 'typescript', 'bin', 'tsc');

const app = `import { Status, TritonError, TritonLlmClient, type GenerateResult } from '@triton-llm/sdk';
import { TritonHttpLlmClient } from '@triton-llm/sdk/http';

// exactOptionalPropertyTypes: an environment variable that may be undefined is a valid url.
const llm = new TritonLlmClient({ url: process.env['TRITON_URL'], model: 'tiny' });
const result: GenerateResult = await llm.generate({ prompt: 'The capital of France is', maxTokens: 8 });
let code: Status | undefined;
try {
  await llm.generate({ prompt: 'x', maxTokens: 0 });
} catch (e) {
  if (e instanceof TritonError) code = e.code;
}
llm.close();
const http = new TritonHttpLlmClient({ url: process.env['TRITON_HTTP_URL'], model: 'tiny' });
const viaHttp = await http.generate({ prompt: 'The capital of France is', maxTokens: 8 });
console.log(JSON.stringify({ text: result.text, code, http: viaHttp.text }));
`;

function tsconfig(moduleResolution: 'node16' | 'bundler'): string {
  return JSON.stringify({
    compilerOptions: {
      target: 'es2022',
      module: moduleResolution === 'node16' ? 'node16' : 'esnext',
      moduleResolution,
      strict: true,
      exactOptionalPropertyTypes: true,
      skipLibCheck: false,
      types: ['node'],
      typeRoots: [join(repoRoot, 'node_modules', '@types')],
      outDir: 'dist',
      ...(moduleResolution === 'bundler' ? { noEmit: true } : {}),
    },
    files: ['main.ts'],
  });
}

describe.skipIf(!existsSync(join(tiny, 'config.json')))('@triton-llm/sdk installed from its tarball', () => {
  let dir: string;
  let repository: TempRepository;
  let server: RunningServer;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'llm-sdk-app-'));
    repository = new TempRepository().add({ name: 'tiny', checkpointDir: tiny, decoupled: true });
    server = await startServer(repository.dir);
  }, 60_000);

  afterAll(async () => {
    await server?.stop();
    repository?.remove();
    rmSync(dir, { recursive: true, force: true });
  });

  it('installs into an empty folder, type-checks under node16 and bundler resolution, and runs', () => {
    const packs = join(dir, 'packs');
    mkdirSync(packs);
    execFileSync('npm', ['pack', '--pack-destination', packs], { cwd: join(repoRoot, 'sdk'), stdio: 'ignore' });
    const tarball = join(packs, readdirSync(packs).find((f) => f.endsWith('.tgz'))!);
    const appDir = join(dir, 'app');
    mkdirSync(appDir);
    writeFileSync(join(appDir, 'package.json'), JSON.stringify({ name: 'app', private: true, type: 'module' }));
    // Its dependencies come from the npm cache this repository's install filled (or the registry).
    execFileSync('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', '--omit=peer', tarball], { cwd: appDir, stdio: 'ignore' });
    writeFileSync(join(appDir, 'main.ts'), app);
    for (const resolution of ['bundler', 'node16'] as const) {
      writeFileSync(join(appDir, 'tsconfig.json'), tsconfig(resolution));
      execFileSync(process.execPath, [tsc, '-p', 'tsconfig.json'], { cwd: appDir, encoding: 'utf8' });
    }
    const output = execFileSync(process.execPath, [join(appDir, 'dist', 'main.js')], {
      cwd: appDir,
      encoding: 'utf8',
      env: { ...process.env, TRITON_URL: server.address, TRITON_HTTP_URL: server.httpUrl },
    });
    const expected = cliGreedy(tiny, 'The capital of France is', 8).text;
    expect(JSON.parse(output.trim())).toEqual({ text: expected, code: 3, http: expected });
  }, 180_000);
});
