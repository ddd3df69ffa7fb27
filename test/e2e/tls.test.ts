// gRPC and HTTP over TLS and mutual TLS on the dev server (tritonserver's --grpc-use-ssl flags and their --http-* twins), with
// certificates the test makes with openssl, checked with the SDK's TLS options.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Status, TritonLlmClient, type TlsOptions } from '../../sdk/src/index.js';
import { buildDir } from '../helpers/paths.js';
import { TempRepository } from '../helpers/repository.js';
import { runRefusedServer, startServer, type RunningServer } from '../helpers/server.js';

const tiny = join(buildDir, 'models', 'synth-tiny-float16');

interface Pki { dir: string; ca: string; serverCert: string; serverKey: string; clientCert: string; clientKey: string; strangerCert: string; strangerKey: string }

/** A CA, a server certificate for 127.0.0.1 and localhost, a client certificate, and a client certificate of another CA. */
function makePki(): Pki {
  const dir = mkdtempSync(join(tmpdir(), 'llm-tls-'));
  const openssl = (...args: string[]): void => { execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' }); };
  const key = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  for (const ca of ['ca', 'other-ca']) openssl('req', '-x509', ...key, '-keyout', `${ca}.key`, '-out', `${ca}.pem`, '-days', '2', '-subj', `/CN=${ca}`);
  writeFileSync(join(dir, 'server.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n');
  const issue = (name: string, ca: string, ext?: string): void => {
    openssl('req', ...key, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`);
    openssl('x509', '-req', '-in', `${name}.csr`, '-CA', `${ca}.pem`, '-CAkey', `${ca}.key`, '-CAcreateserial', '-out', `${name}.pem`, '-days', '2',
      ...(ext ? ['-extfile', ext] : []));
  };
  issue('server', 'ca', 'server.ext');
  issue('client', 'ca');
  issue('stranger', 'other-ca');
  const path = (file: string): string => join(dir, file);
  return { dir, ca: path('ca.pem'), serverCert: path('server.pem'), serverKey: path('server.key'), clientCert: path('client.pem'),
    clientKey: path('client.key'), strangerCert: path('stranger.pem'), strangerKey: path('stranger.key') };
}

/** serverLive through a client with these TLS settings, or the gRPC status of its failure. */
async function live(address: string, tls: boolean | TlsOptions): Promise<boolean | Status> {
  const client = new TritonLlmClient({ url: address, tls, connectTimeoutMs: 5000 });
  try {
    return await client.serverLive({ timeoutMs: 5000 });
  } catch (e) {
    return (e as { code: Status }).code;
  } finally {
    client.close();
  }
}

// One PKI and repository for both endpoints; every server a test starts is stopped at the end.
let pki: Pki;
let repository: TempRepository;
const servers: RunningServer[] = [];

beforeAll(() => {
  pki = makePki();
  repository = new TempRepository().add({ name: 'tiny', checkpointDir: tiny, decoupled: true });
});

afterAll(async () => {
  for (const server of servers) await server.stop();
  repository.remove();
  rmSync(pki.dir, { recursive: true, force: true });
});

describe('gRPC over TLS', () => {
  it('serves TLS to clients that trust its CA, and nothing to plain-text clients', async () => {
    const server = await startServer(repository.dir, ['--grpc-use-ssl', 'true', '--grpc-server-cert', pki.serverCert, '--grpc-server-key', pki.serverKey]);
    servers.push(server);
    expect(server.output()).toMatch(/gRPC uses TLS\n/);
    const rootCerts = readFileSync(pki.ca);
    expect(await live(server.address, { rootCerts })).toBe(true);
    const client = new TritonLlmClient({ url: server.address, tls: { rootCerts }, model: 'tiny' });
    try {
      const result = await client.generate({ prompt: 'The quick brown fox', maxTokens: 4 });
      expect(result.tokenIds).toHaveLength(4);
    } finally {
      client.close();
    }
    expect(await live(server.address, false)).toBe(Status.UNAVAILABLE);
    // A client that does not trust the server's CA refuses the handshake.
    expect(await live(server.address, { rootCerts: readFileSync(join(pki.dir, 'other-ca.pem')) })).toBe(Status.UNAVAILABLE);
  }, 60_000);

  it('with mutual TLS, serves only clients whose certificate its root certificate signed', async () => {
    const server = await startServer(repository.dir, ['--grpc-use-ssl-mutual', 'true', '--grpc-server-cert', pki.serverCert,
      '--grpc-server-key', pki.serverKey, '--grpc-root-cert', pki.ca]);
    servers.push(server);
    expect(server.output()).toMatch(/gRPC uses TLS, clients need a certificate/);
    const rootCerts = readFileSync(pki.ca);
    expect(await live(server.address, { rootCerts, certChain: readFileSync(pki.clientCert), privateKey: readFileSync(pki.clientKey) })).toBe(true);
    expect(await live(server.address, { rootCerts })).toBe(Status.UNAVAILABLE);
    expect(await live(server.address, { rootCerts, certChain: readFileSync(pki.strangerCert), privateKey: readFileSync(pki.strangerKey) }))
      .toBe(Status.UNAVAILABLE);
  }, 60_000);

  it('refuses incomplete or unreadable TLS settings at startup, naming the flag', () => {
    const run = (...args: string[]): { status: number | null; stderr: string } => runRefusedServer(repository.dir, args);
    expect(run('--grpc-use-ssl', 'true')).toMatchObject({ status: 2, stderr: expect.stringMatching(/--grpc-use-ssl needs --grpc-server-cert FILE and --grpc-server-key FILE/) });
    expect(run('--grpc-use-ssl', 'true', '--grpc-server-cert', join(pki.dir, 'nope.pem'), '--grpc-server-key', pki.serverKey))
      .toMatchObject({ status: 2, stderr: expect.stringMatching(/--grpc-server-cert: cannot read '.*nope\.pem': No such file or directory/) });
    expect(run('--grpc-use-ssl', 'true', '--grpc-server-cert', join(pki.dir, 'server.ext'), '--grpc-server-key', pki.serverKey))
      .toMatchObject({ status: 2, stderr: expect.stringMatching(/--grpc-server-cert: '.*server\.ext' is not PEM/) });
    expect(run('--grpc-use-ssl-mutual', 'true', '--grpc-server-cert', pki.serverCert, '--grpc-server-key', pki.serverKey))
      .toMatchObject({ status: 2, stderr: expect.stringMatching(/--grpc-use-ssl-mutual needs --grpc-root-cert FILE/) });
    expect(run('--grpc-server-cert', pki.serverCert, '--grpc-server-key', pki.serverKey))
      .toMatchObject({ status: 2, stderr: expect.stringMatching(/need --grpc-use-ssl true .* plain text/) });
    // A key that is not the certificate's: the server does not start, and says what to check.
    expect(run('--grpc-use-ssl', 'true', '--grpc-server-cert', pki.serverCert, '--grpc-server-key', pki.clientKey))
      .toMatchObject({ status: 1, stderr: expect.stringMatching(/with TLS: check that --grpc-server-cert and --grpc-server-key are a certificate and its private key/) });
  }, 120_000);
});

describe('HTTP over TLS', () => {
  /** curl's exit status and output for `path` over https with these extra arguments. */
  const curl = (server: RunningServer, path: string, ...args: string[]): { status: number | null; body: string } => {
    const url = `${server.httpUrl!.replace(/^http:/, 'https:')}${path}`;
    const r = spawnSync('curl', ['-sS', '--max-time', '20', ...args, url], { encoding: 'utf8' });
    return { status: r.status, body: r.stdout };
  };

  it('serves HTTPS to clients that trust its CA, and nothing to plain-text or distrusting clients', async () => {
    const server = await startServer(repository.dir, ['--http-use-ssl', 'true', '--http-server-cert', pki.serverCert, '--http-server-key', pki.serverKey]);
    servers.push(server);
    expect(server.output()).toMatch(/HTTP uses TLS\n/);
    expect(curl(server, '/v2/health/ready', '--cacert', pki.ca, '-o', '/dev/null', '-w', '%{http_code}')).toEqual({ status: 0, body: '200' });
    const generated = curl(server, '/v2/models/tiny/generate', '--cacert', pki.ca, '-H', 'Content-Type: application/json',
      '-d', JSON.stringify({ text_input: 'The quick brown fox', max_tokens: 4 }));
    expect(generated.status).toBe(0);
    expect(JSON.parse(generated.body)).toMatchObject({ model_name: 'tiny', text_output: expect.any(String) });
    const streamed = curl(server, '/v2/models/tiny/generate_stream', '--cacert', pki.ca, '-N', '-H', 'Content-Type: application/json',
      '-d', JSON.stringify({ text_input: 'The quick brown fox', max_tokens: 4 }));
    const events = streamed.body.split('\n\n').filter((e) => e.startsWith('data: ')).map((e) => JSON.parse(e.slice(6)) as { text_output: string });
    expect(events.map((e) => e.text_output).join('')).toBe((JSON.parse(generated.body) as { text_output: string }).text_output);
    // Plain HTTP gets no answer; a client that does not trust the CA refuses the handshake (curl 60).
    await expect(fetch(`${server.httpUrl!}/v2/health/ready`, { signal: AbortSignal.timeout(10_000) })).rejects.toThrow();
    expect(curl(server, '/v2/health/ready', '--cacert', join(pki.dir, 'other-ca.pem')).status).toBe(60);
    // None of that disturbed the server.
    expect(curl(server, '/v2/health/live', '--cacert', pki.ca, '-o', '/dev/null', '-w', '%{http_code}').body).toBe('200');
  }, 60_000);

  it('with mutual TLS, serves only clients whose certificate its root certificate signed', async () => {
    const server = await startServer(repository.dir, ['--http-use-ssl-mutual', 'true', '--http-server-cert', pki.serverCert,
      '--http-server-key', pki.serverKey, '--http-root-cert', pki.ca]);
    servers.push(server);
    expect(server.output()).toMatch(/HTTP uses TLS, clients need a certificate/);
    const ok = ['--cacert', pki.ca, '-o', '/dev/null', '-w', '%{http_code}'];
    expect(curl(server, '/v2/health/ready', ...ok, '--cert', pki.clientCert, '--key', pki.clientKey)).toEqual({ status: 0, body: '200' });
    expect(curl(server, '/v2/health/ready', ...ok).status).not.toBe(0);
    expect(curl(server, '/v2/health/ready', ...ok, '--cert', pki.strangerCert, '--key', pki.strangerKey).status).not.toBe(0);
    expect(curl(server, '/v2/health/ready', ...ok, '--cert', pki.clientCert, '--key', pki.clientKey).body).toBe('200');
  }, 60_000);

  it('refuses incomplete or unusable TLS settings at startup, naming the flag', () => {
    const run = (...args: string[]): { status: number | null; stderr: string } => runRefusedServer(repository.dir, args);
    expect(run('--http-use-ssl', 'true')).toMatchObject({ status: 2, stderr: expect.stringMatching(/--http-use-ssl needs --http-server-cert FILE and --http-server-key FILE/) });
    expect(run('--http-server-cert', pki.serverCert, '--http-server-key', pki.serverKey))
      .toMatchObject({ status: 2, stderr: expect.stringMatching(/need --http-use-ssl true .* plain text/) });
    expect(run('--http-use-ssl-mutual', 'true', '--http-server-cert', pki.serverCert, '--http-server-key', pki.serverKey))
      .toMatchObject({ status: 2, stderr: expect.stringMatching(/--http-use-ssl-mutual needs --http-root-cert FILE/) });
    expect(run('--http-use-ssl', 'true', '--http-server-cert', pki.serverCert, '--http-server-key', pki.clientKey))
      .toMatchObject({ status: 1, stderr: expect.stringMatching(/HTTP with TLS: check that --http-server-cert and --http-server-key are a certificate and its private key/) });
  }, 120_000);
});
