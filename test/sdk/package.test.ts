// What `npm pack` in sdk/ puts in the package: it builds first (prepack), ships the built entry
// points with their types, the README and the licence, and nothing else; CommonJS can require() it.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { repoRoot } from '../helpers/paths.js';

interface PackedFile { path: string; size: number }

describe('the @triton-llm/sdk package', () => {
  const sdk = join(repoRoot, 'sdk');
  let report: { name: string; files: PackedFile[] }[];

  beforeAll(() => {
    // Packing builds dist/ first (prepack), which the require() test below loads too.
    const output = execFileSync('npm', ['pack', '--dry-run', '--json'], { cwd: sdk, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    // Lifecycle scripts may print first; the JSON report starts at the first line opening an array.
    report = JSON.parse(output.slice(output.search(/^\[/m))) as { name: string; files: PackedFile[] }[];
  }, 120_000);

  it('packs its built entry points, types, README and licence, and nothing else', () => {
    const files = report[0]!.files.map((f) => f.path).sort();
    expect(report[0]!.name).toBe('@triton-llm/sdk');
    for (const entry of ['index', 'openai/index', 'ai-sdk/index', 'langchain/index', 'http/index']) {
      expect(files).toContain(`dist/${entry}.js`);
      expect(files).toContain(`dist/${entry}.d.ts`);
    }
    expect(files).toEqual(expect.arrayContaining(['LICENSE', 'README.md', 'package.json']));
    expect(files.filter((f) => !f.startsWith('dist/') && !['LICENSE', 'README.md', 'package.json'].includes(f))).toEqual([]);
    // The licence is the repository's, as package.json's "license" says.
    expect(readFileSync(join(sdk, 'LICENSE'), 'utf8')).toBe(readFileSync(join(repoRoot, 'LICENSE'), 'utf8'));
    expect((JSON.parse(readFileSync(join(sdk, 'package.json'), 'utf8')) as { license: string }).license).toBe('Apache-2.0');
    expect(readFileSync(join(repoRoot, 'LICENSE'), 'utf8')).toMatch(/Apache License\s+Version 2\.0, January 2004/);
  });

  // The package is ESM only; CommonJS code require()s it where Node.js loads ES modules that way
  // (20.19+, 22.12+), which breaks if any module of it gains a top-level await.
  it.skipIf(!(process.features as { require_module?: boolean }).require_module)(
    'loads with require() from CommonJS (the main, http and openai entry points)',
    () => {
      const script = `
        const { join } = require('node:path');
        const root = process.argv[1];
        const main = require(join(root, 'dist/index.js'));
        const http = require(join(root, 'dist/http/index.js'));
        const openai = require(join(root, 'dist/openai/index.js'));
        console.log(JSON.stringify([typeof main.TritonLlmClient, typeof main.TritonError, typeof http.TritonHttpLlmClient, Object.keys(openai).length > 0]));`;
      const output = execFileSync(process.execPath, ['-e', script, sdk], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
      expect(JSON.parse(output.trim().split('\n').at(-1)!)).toEqual(['function', 'function', 'function', true]);
    },
  );
});
