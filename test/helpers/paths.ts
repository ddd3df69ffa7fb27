import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
/** Where setup put the synthetic checkpoints and the vocabulary. */
export const buildDir = join(repoRoot, 'build');
/** Binaries under test: build/ by default; LLM_BUILD_DIR=build-asan runs the suite on the sanitizer build. */
const binaryBuildDir = resolve(repoRoot, process.env.LLM_BUILD_DIR ?? 'build');
export const llmCli = join(binaryBuildDir, 'bin', 'llm');
export const llmServer = join(binaryBuildDir, 'bin', 'llm-server');
export const protosDir = join(repoRoot, 'protos');
/** ../shared beside the repository: trained models and reference outputs (absent on some machines). */
export const sharedDir = process.env.LLM_SHARED_DIR ?? resolve(repoRoot, '..', 'shared');

export function sharedPath(relative: string): string | undefined {
  const path = join(sharedDir, relative);
  return existsSync(path) ? path : undefined;
}
