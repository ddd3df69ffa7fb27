// Starts build/bin/llm-server on a free loopback port for a test and stops it afterwards.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { llmServer } from './paths.js';

export interface RunningServer {
  address: string;
  /** Everything the server printed so far (stdout and stderr). */
  output(): string;
  /** SIGTERM, then wait for exit; resolves to the exit code. */
  stop(): Promise<number | null>;
}

export async function startServer(modelRepository: string, extraArgs: string[] = []): Promise<RunningServer> {
  const child: ChildProcessWithoutNullStreams = spawn(
    llmServer,
    ['--model-repository', modelRepository, '--grpc-port', '0', '--grpc-address', '127.0.0.1', ...extraArgs],
    { stdio: 'pipe' },
  );
  let output = '';
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const address = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`llm-server did not start within 120 s:\n${output}`)), 120_000);
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      const match = /serving gRPC on ([\d.]+:\d+)/.exec(output);
      if (match?.[1]) {
        clearTimeout(timer);
        resolve(match[1]);
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`llm-server exited with ${code} before serving:\n${output}`));
    });
  });
  return {
    address,
    output: () => output,
    stop: async () => {
      if (child.exitCode === null) child.kill('SIGTERM');
      return exited;
    },
  };
}
