/**
 * The Kubernetes manifests (deploy/k8s) checked offline: every object of the base, of the example
 * overlay as kustomize builds it, and the Secret template is validated against the Kubernetes
 * and KEDA JSON schemas (kubernetes-models, @kubernetes-models/keda), and the settings that
 * must agree with the code agree: probes on WORKER_HTTP_PORT's /healthz and /readyz, a grace
 * period above WORKER_SHUTDOWN_TIMEOUT, a memory request above the measured worker RSS, KEDA's
 * list = the BullMQ wait list of STORYCHECK_PREFIX, a ConfigMap loadConfig accepts.
 *
 * No kubectl here: {@link build} is a small kustomize for what these files use — resources
 * (files and directories), namespace, labels, images and strategic-merge patches (maps merge;
 * lists of named items merge by name, other lists are replaced, as for custom resources).
 */
import { readFileSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';
import * as core from 'kubernetes-models/v1';
import * as apps from 'kubernetes-models/apps/v1';
import * as batch from 'kubernetes-models/batch/v1';
import * as policy from 'kubernetes-models/policy/v1';
import * as keda from '@kubernetes-models/keda/keda.sh/v1alpha1';
import { loadConfig, parseDurationMs } from '@storycheck/config';
import { STORY_CHECK_QUEUE, queuePrefix } from '@storycheck/queue';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '../../..');
const K8S = join(ROOT, 'deploy/k8s');

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Obj = Record<string, any>;

const MODELS: Record<string, Record<string, unknown>> = {
  v1: core,
  'apps/v1': apps,
  'batch/v1': batch,
  'policy/v1': policy,
  'keda.sh/v1alpha1': keda,
};

/** Validates one object against its schema; throws with the schema's complaint. */
function validate(o: Obj): void {
  const Model = MODELS[o.apiVersion]?.[o.kind] as
    (new (d: Obj) => { validate(): void }) | undefined;
  if (!Model) throw new Error(`no schema for ${o.apiVersion} ${o.kind}`);
  new Model(o).validate();
}

function readYaml(file: string): Obj[] {
  return parseAllDocuments(readFileSync(file, 'utf8'))
    .map((d) => {
      if (d.errors.length) throw new Error(`${file}: ${d.errors[0]!.message}`);
      return d.toJS() as Obj | null;
    })
    .filter((o): o is Obj => o !== null);
}

const isMap = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Strategic merge, as kustomize does it for these files. */
function merge(base: unknown, patch: unknown): unknown {
  if (isMap(base) && isMap(patch)) {
    const out: Obj = { ...base };
    for (const [k, v] of Object.entries(patch)) out[k] = k in out ? merge(out[k], v) : v;
    return out;
  }
  if (
    Array.isArray(base) &&
    Array.isArray(patch) &&
    [...base, ...patch].every((x) => isMap(x) && typeof x.name === 'string')
  ) {
    const out = base.map((b: Obj) => {
      const p = patch.find((x: Obj) => x.name === b.name);
      return p ? merge(b, p) : b;
    });
    for (const p of patch as Obj[]) if (!base.some((b: Obj) => b.name === p.name)) out.push(p);
    return out;
  }
  return patch;
}

const CLUSTER_SCOPED = new Set(['Namespace']);

/** `kubectl kustomize <dir>` for the features these manifests use. */
function build(dir: string): Obj[] {
  const k = readYaml(join(dir, 'kustomization.yaml'))[0]!;
  let objs: Obj[] = [];
  for (const r of (k.resources ?? []) as string[]) {
    const p = join(dir, r);
    objs.push(...(statSync(p).isDirectory() ? build(p) : readYaml(p)));
  }
  for (const { path } of (k.patches ?? []) as Array<{ path: string }>) {
    for (const patch of readYaml(join(dir, path))) {
      const i = objs.findIndex(
        (o) => o.kind === patch.kind && o.metadata?.name === patch.metadata?.name,
      );
      if (i < 0) throw new Error(`patch ${path}: no ${patch.kind} ${patch.metadata?.name}`);
      objs[i] = merge(objs[i], patch) as Obj;
    }
  }
  objs = objs.map((o) => structuredClone(o));
  for (const o of objs) {
    if (k.namespace && !CLUSTER_SCOPED.has(o.kind)) o.metadata.namespace = k.namespace;
    for (const l of (k.labels ?? []) as Array<{ pairs: Record<string, string> }>)
      o.metadata.labels = { ...o.metadata.labels, ...l.pairs };
    for (const img of (k.images ?? []) as Array<{
      name: string;
      newName?: string;
      newTag?: string;
    }>)
      for (const c of o.spec?.template?.spec?.containers ?? []) {
        const [name, tag] = String(c.image).split(':');
        if (name === img.name) c.image = `${img.newName ?? name}:${img.newTag ?? tag}`;
      }
  }
  return objs;
}

const find = (objs: Obj[], kind: string, name: string) => {
  const o = objs.find((x) => x.kind === kind && x.metadata.name === name);
  if (!o) throw new Error(`no ${kind} ${name}`);
  return o;
};

const base = build(join(K8S, 'base'));
const overlay = build(join(K8S, 'overlays/example'));
const secret = readYaml(join(K8S, 'secret.template.yaml'));

describe('Kubernetes manifests', () => {
  it('the schema check rejects a broken object (it can fail)', () => {
    const d = structuredClone(find(base, 'Deployment', 'storycheck-worker'));
    d.spec.replicas = 'two';
    expect(() => validate(d)).toThrow();
    const so = structuredClone(find(base, 'ScaledObject', 'storycheck-worker'));
    delete so.spec.scaleTargetRef;
    expect(() => validate(so)).toThrow();
  });

  it.each([
    ['base', base],
    ['overlay', overlay],
    ['secret template', secret],
  ])('every object of the %s is valid against the Kubernetes and KEDA schemas', (_n, objs) => {
    expect(objs.length).toBeGreaterThan(0);
    for (const o of objs) expect(() => validate(o)).not.toThrow();
  });

  it('the base holds what a deployment needs', () => {
    expect(base.map((o) => `${o.kind}/${o.metadata.name}`).sort()).toEqual([
      'ConfigMap/storycheck-config',
      'Deployment/storycheck-board',
      'Deployment/storycheck-worker',
      'Job/storycheck-migrate',
      'PodDisruptionBudget/storycheck-worker',
      'ScaledObject/storycheck-worker',
      'Service/storycheck-board',
      'TriggerAuthentication/storycheck-redis-auth',
    ]);
  });

  it.each([
    ['base', base],
    ['overlay', overlay],
  ])('the %s agrees with the code', (_n, objs) => {
    const cm = find(objs, 'ConfigMap', 'storycheck-config').data as Record<string, string>;
    const secretData = secret[0]!.stringData as Record<string, string>;
    // Every variable is one loadConfig accepts, with the Secret's.
    const config = loadConfig({ ...cm, ...secretData });
    const worker = find(objs, 'Deployment', 'storycheck-worker');
    const pod = worker.spec.template.spec;
    const c = pod.containers[0];
    // Probes on the worker's HTTP port, its /healthz and /readyz.
    expect(c.ports).toEqual([{ name: 'http', containerPort: config.workerHttpPort }]);
    expect(config.workerHttpHost).toBe('0.0.0.0');
    expect(c.livenessProbe.httpGet).toEqual({ path: '/healthz', port: 'http' });
    expect(c.readinessProbe.httpGet).toEqual({ path: '/readyz', port: 'http' });
    // Graceful stop: Kubernetes waits longer than the worker's own shutdown deadline.
    expect(pod.terminationGracePeriodSeconds * 1000).toBeGreaterThan(
      parseDurationMs(cm.WORKER_SHUTDOWN_TIMEOUT ?? '20s') + 5_000,
    );
    // Memory request above the measured worker RSS (docs/benchmarks.md), limit above that.
    const measured = [
      ...readFileSync(join(ROOT, 'docs/benchmarks.md'), 'utf8').matchAll(
        /worker peak RSS[^|]*\|\s*([\d.]+) MB/g,
      ),
    ].map((m) => Number(m[1]));
    expect(measured.length).toBeGreaterThan(0);
    const mi = (v: string) => Number(/^(\d+)Mi$/.exec(v)?.[1]) * 1.048576;
    expect(mi(c.resources.requests.memory)).toBeGreaterThan(Math.max(...measured));
    expect(mi(c.resources.limits.memory)).toBeGreaterThan(mi(c.resources.requests.memory));
    // KEDA scales on the BullMQ wait list of this prefix, and targets the worker.
    const so = find(objs, 'ScaledObject', 'storycheck-worker');
    expect(so.spec.scaleTargetRef.name).toBe('storycheck-worker');
    expect(so.spec.triggers[0].metadata.listName).toBe(
      `${queuePrefix(config.prefix)}:${STORY_CHECK_QUEUE}:wait`,
    );
    expect(so.spec.minReplicaCount).toBeGreaterThanOrEqual(1);
    // The PDB and the board's Service select the pods they mean.
    const pdb = find(objs, 'PodDisruptionBudget', 'storycheck-worker');
    expect(pdb.spec.selector.matchLabels).toEqual(worker.spec.template.metadata.labels);
    const board = find(objs, 'Deployment', 'storycheck-board');
    const svc = find(objs, 'Service', 'storycheck-board');
    expect(svc.spec.selector).toEqual(board.spec.template.metadata.labels);
    expect(board.spec.template.spec.containers[0].ports[0].containerPort).toBe(config.board.port);
    expect(
      find(objs, 'Job', 'storycheck-migrate').spec.template.spec.containers[0].command,
    ).toEqual(['node', 'apps/producer/dist/main.js', 'db', 'migrate']);
  });

  it('the overlay sets namespace, image and the budget-derived scaling', () => {
    for (const o of overlay)
      if (o.kind !== 'Namespace') expect(o.metadata.namespace).toBe('storycheck');
    const worker = find(overlay, 'Deployment', 'storycheck-worker');
    expect(worker.spec.template.spec.containers[0].image).toBe(
      'registry.example.com/storycheck:1.4.0',
    );
    const so = find(overlay, 'ScaledObject', 'storycheck-worker');
    expect(so.spec.maxReplicaCount).toBe(10);
    expect(so.spec.triggers).toHaveLength(1);
    expect(so.spec.triggers[0].type).toBe('redis-cluster');
    // Unchanged by the patch: still the base's target and minimum.
    expect(so.spec.scaleTargetRef.name).toBe('storycheck-worker');
    expect(find(overlay, 'ConfigMap', 'storycheck-config').data.GLOBAL_RATE).toBe('60/1s');
  });
});
