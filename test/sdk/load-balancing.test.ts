// Client-side load balancing in the SDK: one client over several Triton servers (gRPC round_robin),
// checked against two dev servers by their own request statistics.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseUrl } from '../../sdk/src/client.js';
import { TritonClient, TritonError, TritonLlmClient } from '../../sdk/src/index.js';
import { buildDir } from '../helpers/paths.js';
import { TempRepository } from '../helpers/repository.js';
import { startServer, type RunningServer } from '../helpers/server.js';

const tiny = join(buildDir, 'models', 'synth-tiny-float16');

describe('load-balancing targets', () => {
  it('passes gRPC target names through and turns address lists into one target', () => {
    expect(parseUrl('dns:///triton-headless.default.svc.cluster.local:8001')).toEqual({
      target: 'dns:///triton-headless.default.svc.cluster.local:8001',
      tls: undefined,
    });
    expect(parseUrl('ipv4:10.0.0.5:8001,10.0.0.6:8001')).toEqual({ target: 'ipv4:10.0.0.5:8001,10.0.0.6:8001', tls: undefined, several: true });
    expect(parseUrl(['10.0.0.5:8001', '10.0.0.6:9001'])).toEqual({ target: 'ipv4:10.0.0.5:8001,10.0.0.6:9001', tls: undefined, several: true });
    expect(parseUrl(['grpcs://[fd00::1]:8001', 'grpcs://[fd00::2]:8001'])).toEqual({ target: 'ipv6:[fd00::1]:8001,[fd00::2]:8001', tls: true, several: true });
    expect(parseUrl(['triton:8001'])).toEqual({ target: 'triton:8001', tls: undefined });
    expect(() => parseUrl(['triton-a:8001', 'triton-b:8001'])).toThrow(/dns:\/\/\/NAME:PORT/);
    expect(() => parseUrl(['10.0.0.5:8001', '[fd00::1]:8001'])).toThrow(/IPv4 or IPv6/);
    expect(() => parseUrl(['grpcs://10.0.0.5:8001', '10.0.0.6:8001'])).toThrow(/mix TLS/);
    expect(() => parseUrl([])).toThrow(/empty list/);
    expect(() => new TritonClient({ url: 'localhost:1', loadBalancing: 'random' as 'round_robin' })).toThrow(TritonError);
  });
});

describe('client-side round_robin over two dev servers', () => {
  let repository: TempRepository;
  let a: RunningServer;
  let b: RunningServer;
  let statsA: TritonClient;
  let statsB: TritonClient;

  /** Requests a server completed for the model, from its own ModelStatistics. */
  const completed = async (client: TritonClient): Promise<number> =>
    (await client.modelStatistics('tiny'))[0]?.inferenceStats?.success?.count ?? 0;

  beforeAll(async () => {
    if (!existsSync(join(tiny, 'config.json'))) throw new Error(`${tiny} is missing: run bash scripts/setup.sh first`);
    repository = new TempRepository().add({ name: 'tiny', checkpointDir: tiny, decoupled: true });
    [a, b] = await Promise.all([startServer(repository.dir), startServer(repository.dir)]);
    statsA = new TritonClient({ url: a.address });
    statsB = new TritonClient({ url: b.address });
  });

  afterAll(async () => {
    statsA?.close();
    statsB?.close();
    if (a) await a.stop();
    if (b) await b.stop();
    repository?.remove();
  });

  /**
   * Requests the two servers completed since `before`, once they add up to `total`: a server
   * reports a request's statistics just after its final response, so they may lag the client.
   */
  async function completedSince(before: readonly number[], total: number): Promise<[number, number]> {
    let counts: [number, number] = [0, 0];
    for (let i = 0; i < 100; ++i) {
      counts = [(await completed(statsA)) - before[0]!, (await completed(statsB)) - before[1]!];
      if (counts[0] + counts[1] >= total) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    return counts;
  }

  /** Sends `n` requests one after the other; returns how many each server completed meanwhile. */
  async function spread(llm: TritonLlmClient, n: number): Promise<[number, number]> {
    // Health calls connect the channel to every server first (round_robin picks only ready ones).
    for (let i = 0; i < 4; ++i) expect(await llm.serverReady()).toBe(true);
    const before = [await completed(statsA), await completed(statsB)];
    for (let i = 0; i < n; ++i) {
      const result = await llm.generate({ prompt: `Request ${i}`, maxTokens: 3 });
      expect(result.usage.completionTokens).toBe(3);
    }
    return completedSince(before, n);
  }

  it('a list of addresses spreads requests over both servers', async () => {
    const llm = new TritonLlmClient({ url: [a.address, b.address], model: 'tiny' });
    try {
      const [onA, onB] = await spread(llm, 10);
      expect(onA + onB).toBe(10);
      expect(onA).toBeGreaterThanOrEqual(3);
      expect(onB).toBeGreaterThanOrEqual(3);
    } finally {
      llm.close();
    }
  });

  it('an ipv4: target with loadBalancing round_robin does the same; pick_first keeps to one server', async () => {
    const target = `ipv4:${a.address},${b.address}`;
    const balanced = new TritonLlmClient({ url: target, loadBalancing: 'round_robin', model: 'tiny' });
    try {
      const [onA, onB] = await spread(balanced, 8);
      expect(onA + onB).toBe(8);
      expect(Math.min(onA, onB)).toBeGreaterThanOrEqual(2);
    } finally {
      balanced.close();
    }
    const first = new TritonLlmClient({ url: target, loadBalancing: 'pick_first', model: 'tiny' });
    try {
      const [onA, onB] = await spread(first, 6);
      expect(onA + onB).toBe(6);
      expect(Math.min(onA, onB)).toBe(0);
    } finally {
      first.close();
    }
  });

  it('dns: targets are passed to gRPC as they are', async () => {
    const port = b.address.split(':')[1];
    const llm = new TritonLlmClient({ url: `dns:///127.0.0.1:${port}`, loadBalancing: 'round_robin', model: 'tiny' });
    try {
      expect((await llm.generate({ prompt: 'Hi', maxTokens: 2 })).usage.completionTokens).toBe(2);
    } finally {
      llm.close();
    }
  });

  it('when one server goes away, requests go to the other', async () => {
    const llm = new TritonLlmClient({ url: [a.address, b.address], model: 'tiny' });
    try {
      await spread(llm, 2);
      expect(await b.stop()).toBe(0);
      await new Promise((r) => setTimeout(r, 300));  // the channel sees the connection close
      const before = await completed(statsA);
      for (let i = 0; i < 4; ++i) expect((await llm.generate({ prompt: `After ${i}`, maxTokens: 2 })).usage.completionTokens).toBe(2);
      let onA = 0;
      for (let i = 0; i < 100 && onA < 4; ++i) {
        onA = (await completed(statsA)) - before;
        if (onA < 4) await new Promise((r) => setTimeout(r, 20));
      }
      expect(onA).toBe(4);
    } finally {
      llm.close();
    }
  });
});
