// deploy/k8s/*.yaml parsed as Kubernetes would read them (the `yaml` package), and the fields that
// tie the objects together checked: names, ports, probes, volumes, GPU scheduling, and the paths
// the model configs name being mounted where the server runs.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { repoRoot } from '../helpers/paths.js';

type Json = Record<string, unknown>;
interface Manifest { file: string; kind: string; name: string; body: Json }

const k8sDir = join(repoRoot, 'deploy', 'k8s');

function manifests(): Manifest[] {
  const all: Manifest[] = [];
  for (const file of readdirSync(k8sDir).filter((f) => f.endsWith('.yaml'))) {
    for (const doc of parseAllDocuments(readFileSync(join(k8sDir, file), 'utf8'))) {
      expect(doc.errors, `${file}: YAML errors`).toEqual([]);
      const body = doc.toJS() as Json | null;
      if (body === null) continue;
      const metadata = body['metadata'] as Json | undefined;
      expect(typeof body['apiVersion'], `${file}: apiVersion`).toBe('string');
      expect(typeof body['kind'], `${file}: kind`).toBe('string');
      expect(typeof metadata?.['name'], `${file}: metadata.name`).toBe('string');
      all.push({ file, kind: body['kind'] as string, name: metadata!['name'] as string, body });
    }
  }
  return all;
}

const at = (value: unknown, ...path: (string | number)[]): unknown =>
  path.reduce<unknown>((v, key) => (v === null || v === undefined ? undefined : (v as Record<string | number, unknown>)[key]), value);

interface Container { name: string; args?: string[]; ports?: Json[]; volumeMounts?: Json[]; resources?: Json; [probe: string]: unknown }

/** The paths the deploy model repository's configs name (engine_dir, tokenizer_dir). */
function configPaths(): string[] {
  const repository = join(repoRoot, 'deploy', 'model_repository');
  const paths: string[] = [];
  for (const model of readdirSync(repository)) {
    const text = readFileSync(join(repository, model, 'config.pbtxt'), 'utf8');
    for (const key of ['engine_dir', 'tokenizer_dir']) {
      const value = new RegExp(`key: "${key}"[^\\n]*\\n\\s*value: \\{ string_value: "([^"]+)"`).exec(text)?.[1];
      expect(value, `${model}: ${key}`).toBeDefined();
      paths.push(value!);
    }
  }
  return paths;
}

/** A pod spec's checks: GPU requested and scheduled on GPU nodes, every mount backed by a volume, config paths mounted. */
function checkPod(where: string, pod: Json, container: Container, claims: Set<string>): void {
  expect(at(container.resources, 'limits', 'nvidia.com/gpu'), `${where}: GPU limit`).toBeGreaterThanOrEqual(1);
  expect(at(pod, 'nodeSelector', 'nvidia.com/gpu.present'), `${where}: GPU node selector`).toBe('true');
  expect((pod['tolerations'] as Json[] | undefined)?.some((t) => t['key'] === 'nvidia.com/gpu'), `${where}: GPU toleration`).toBe(true);
  const volumes = new Map(((pod['volumes'] as Json[] | undefined) ?? []).map((v) => [v['name'] as string, v]));
  for (const mount of container.volumeMounts ?? []) {
    const volume = volumes.get(mount['name'] as string);
    expect(volume, `${where}: volume ${String(mount['name'])}`).toBeDefined();
    const claim = at(volume, 'persistentVolumeClaim', 'claimName');
    if (claim !== undefined) expect(claims.has(claim as string), `${where}: claim ${String(claim)} is defined`).toBe(true);
  }
  const mounted = (container.volumeMounts ?? []).map((m) => m['mountPath'] as string);
  for (const path of configPaths()) {
    expect(mounted.some((m) => path === m || path.startsWith(`${m}/`)), `${where}: ${path} (a model config's) is mounted`).toBe(true);
  }
  const repository = container.args?.find((a) => a.startsWith('--model-repository='))?.split('=')[1];
  expect(repository, `${where}: --model-repository`).toBe('/models');  // the image's copy of deploy/model_repository
}

function flag(args: string[] | undefined, name: string, fallback: number): number {
  const value = args?.find((a) => a.startsWith(`--${name}=`))?.split('=')[1];
  return value === undefined ? fallback : Number(value);
}

describe('deploy/k8s manifests', () => {
  const all = manifests();
  const find = (kind: string, name?: string): Manifest[] => all.filter((m) => m.kind === kind && (name === undefined || m.name === name));
  const claims = new Set(find('PersistentVolumeClaim').map((m) => m.name));

  it('define the volume claim every pod mounts', () => {
    expect([...claims]).toEqual(['triton-llm-models']);
    const claim = find('PersistentVolumeClaim')[0]!.body;
    expect(at(claim, 'spec', 'accessModes')).toContain('ReadWriteMany');
    expect(at(claim, 'spec', 'resources', 'requests', 'storage')).toMatch(/^\d+Gi$/);
  });

  it('the Deployment: ports as tritonserver serves them, probes on its health endpoints, GPUs, volumes; the Services select it', () => {
    const [deployment] = find('Deployment', 'triton-llm');
    expect(deployment).toBeDefined();
    const pod = at(deployment!.body, 'spec', 'template', 'spec') as Json;
    const labels = at(deployment!.body, 'spec', 'template', 'metadata', 'labels') as Json;
    expect(at(deployment!.body, 'spec', 'selector', 'matchLabels')).toEqual(labels);
    const container = (pod['containers'] as Container[])[0]!;
    const ports = new Map((container.ports ?? []).map((p) => [p['name'] as string, p['containerPort'] as number]));
    expect(ports).toEqual(new Map([['http', flag(container.args, 'http-port', 8000)], ['grpc', flag(container.args, 'grpc-port', 8001)],
      ['metrics', flag(container.args, 'metrics-port', 8002)]]));
    for (const probe of ['startupProbe', 'readinessProbe', 'livenessProbe']) {
      const get = at(container, probe, 'httpGet') as Json;
      expect(ports.has(get['port'] as string), `${probe} port`).toBe(true);
      expect(get['path']).toBe(probe === 'livenessProbe' ? '/v2/health/live' : '/v2/health/ready');
    }
    checkPod('Deployment', pod, container, claims);
    for (const service of find('Service')) {
      expect(at(service.body, 'spec', 'selector'), `${service.name} selects the pods`).toEqual(labels);
      for (const port of at(service.body, 'spec', 'ports') as Json[]) {
        expect(ports.has(port['targetPort'] as string), `${service.name}: targetPort ${String(port['targetPort'])}`).toBe(true);
      }
    }
    expect(at(find('Service', 'triton-llm-headless')[0]?.body, 'spec', 'clusterIP')).toBe('None');
  });

  it('KServe: the InferenceService names the ServingRuntime, whose port and probe are where tritonserver listens', () => {
    const [runtime] = find('ServingRuntime', 'triton-llm');
    const [service] = find('InferenceService', 'triton-llm');
    expect(runtime && service).toBeTruthy();
    expect(at(service!.body, 'spec', 'predictor', 'model', 'runtime')).toBe(runtime!.name);
    const format = at(service!.body, 'spec', 'predictor', 'model', 'modelFormat') as Json;
    expect((at(runtime!.body, 'spec', 'supportedModelFormats') as Json[]).some((f) => f['name'] === format['name'] && f['version'] === format['version']))
      .toBe(true);
    expect(at(runtime!.body, 'spec', 'protocolVersions')).toEqual(expect.arrayContaining(['v2', 'grpc-v2']));
    const spec = at(runtime!.body, 'spec') as Json;
    const container = (spec['containers'] as Container[])[0]!;
    expect(container.name).toBe('kserve-container');
    // KServe sends HTTP to the one declared port and gRPC to 9000.
    const port = (container.ports ?? [])[0]?.['containerPort'];
    expect(port).toBe(flag(container.args, 'http-port', 8000));
    expect(flag(container.args, 'grpc-port', 8001)).toBe(9000);
    expect(at(container, 'readinessProbe', 'httpGet')).toEqual({ path: '/v2/health/ready', port });
    expect(Number(at(spec, 'annotations', 'prometheus.kserve.io/port'))).toBe(flag(container.args, 'metrics-port', 8002));
    checkPod('ServingRuntime', spec, container, claims);
    expect(at(service!.body, 'spec', 'predictor', 'model', 'resources', 'limits', 'nvidia.com/gpu')).toBeGreaterThanOrEqual(1);
    expect(at(service!.body, 'spec', 'predictor', 'nodeSelector', 'nvidia.com/gpu.present')).toBe('true');
    expect(at(service!.body, 'spec', 'predictor', 'minReplicas')).toBeGreaterThanOrEqual(1);
  });
});
