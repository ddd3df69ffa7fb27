// sdk/src/generated/ is committed: regenerating it from protos/ must give the same files.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { repoRoot } from '../helpers/paths.js';

function files(dir: string): string[] {
  return readdirSync(dir)
    .flatMap((name) => {
      const path = join(dir, name);
      return statSync(path).isDirectory() ? files(path) : [path];
    })
    .sort();
}

describe('generated protocol types', () => {
  const scratch = mkdtempSync(join(tmpdir(), 'sdk-gen-'));
  afterAll(() => rmSync(scratch, { recursive: true, force: true }));

  it('match what `npm run sdk:gen` makes from protos/', () => {
    const committed = join(repoRoot, 'sdk', 'src', 'generated');
    const fresh = join(scratch, 'generated');
    execFileSync(process.execPath, [join(repoRoot, 'sdk', 'scripts', 'generate.mjs'), fresh], { cwd: repoRoot, stdio: 'pipe' });
    const committedFiles = files(committed).map((f) => relative(committed, f));
    const freshFiles = files(fresh).map((f) => relative(fresh, f));
    expect(committedFiles).toEqual(freshFiles);
    expect(committedFiles).toContain('grpc_service.ts');
    expect(committedFiles).toContain('descriptor.ts');
    for (const file of freshFiles) {
      expect(readFileSync(join(committed, file), 'utf8'), `${file} is stale: run npm run sdk:gen`).toBe(readFileSync(join(fresh, file), 'utf8'));
    }
  });
});
