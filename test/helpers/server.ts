// Starts build/bin/llm-server on a free loopback port for a test and stops it afterwards.
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { llmServer } from './paths.js';

export interface RunningServer {
  /** gRPC host:port. */
  address: string;
  /** HTTP/REST base URL (http://host:port), or undefined with --allow-http false. */
  httpUrl: string | undefined;
  /** Metrics base URL (GET <metricsUrl>/metrics), or undefined with --allow-metrics false. */
  metricsUrl: string | undefined;
  pid: number;
  /** Everything the server printed so far (stdout and stderr). */
  output(): string;
  /** SIGTERM, then wait for exit; resolves to the exit code. */
  stop(): Promise<number | null>;
}

/** Runs llm-server on free ports with options it must refuse at startup: its exit status and stderr. */
export function runRefusedServer(modelRepository: string, extraArgs: string[]): { status: number | null; stderr: string } {
  const r = spawnSync(llmServer, ['--model-repository', modelRepository, '--grpc-port', '0', '--http-port', '0', '--metrics-port', '0', ...extraArgs],
    { encoding: 'utf8', timeout: 30_000 });
  return { status: r.status, stderr: r.stderr };
}

export async function startServer(modelRepository: string, extraArgs: string[] = []): Promise<RunningServer> {
  const child: ChildProcessWithoutNullStreams = spawn(
    llmServer,
    ['--model-repository', modelRepository, '--grpc-port', '0', '--grpc-address', '127.0.0.1', '--http-port', '0',
      '--metrics-port', '0', ...extraArgs],
    { stdio: 'pipe' },
  );
  let output = '';
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const address = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`llm-server did not start within 120 s:\n${output}`)), 120_000);
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      // The gRPC line comes last: the HTTP and metrics lines are in by then.
      const match = /serving gRPC on (\S+)\n/.exec(output);
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
  const endpoint = (name: string): string | undefined => {
    const found = new RegExp(`serving ${name} on (\\S+)\\n`).exec(output)?.[1];
    return found ? `http://${found}` : undefined;
  };
  return {
    address,
    httpUrl: endpoint('HTTP'),
    metricsUrl: endpoint('metrics'),
    pid: child.pid ?? 0,
    output: () => output,
    stop: async () => {
      if (child.exitCode === null) child.kill('SIGTERM');
      return exited;
    },
  };
}
