/**
 * deploy/monitoring/: the alert rules pass `promtool check rules`; every PromQL expression of
 * the Grafana dashboard parses (each is wrapped into a recording rule of a temporary rules file
 * for promtool); every alert names a runbook under docs/runbooks/; and every metric the rules
 * and the dashboard name is one the processes really export — read from the `/metrics` of a
 * running worker and a running board (both started here as the real binaries). The Prometheus
 * config, rendered the way the compose service renders it, passes `promtool check config`.
 *
 * promtool comes with Debian's `prometheus` package (.ci/run installs it); without it the
 * promtool checks are skipped with that message, the metric-name check still runs.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import {
  TEST_REDIS_URL,
  createTestDatabase,
  createTestPrefix,
  freePort,
  runNode,
  spawnNode,
  waitFor,
  type Spawned,
  type TestDatabase,
  type TestPrefix,
} from '@storycheck/testkit';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const MON = join(ROOT, 'deploy', 'monitoring');
const HAS_PROMTOOL = spawnSync('promtool', ['--version']).status === 0;
if (!HAS_PROMTOOL)
  process.stderr.write(
    'monitoring test: promtool checks SKIPPED (install Debian\'s "prometheus" package)\n',
  );
const withPromtool = HAS_PROMTOOL ? it : it.skip;

/** The runbooks an alert may name (docs/runbooks/, written beside the rules). */
const RUNBOOKS = [
  'all-sessions-throttled',
  'sessions-logged-out',
  'proxy-broken',
  'redis-down',
  'redis-full',
  'redis-data-lost',
  'postgres-down',
  'batch-stuck',
  'worker-crash-loop',
  'throttle-storm',
  'rotate-secret-key',
  'restore-backup',
  'upgrade',
];

interface Rule {
  alert?: string;
  record?: string;
  expr: string;
  annotations?: Record<string, string>;
}
const rules = (): Rule[] =>
  (
    parseYaml(readFileSync(join(MON, 'alerts.yml'), 'utf8')) as { groups: { rules: Rule[] }[] }
  ).groups.flatMap((g) => g.rules);

interface Panel {
  title?: string;
  targets?: { expr?: string }[];
  panels?: Panel[];
}
const dashboardExprs = (): { panel: string; expr: string }[] => {
  const d = JSON.parse(
    readFileSync(join(MON, 'grafana', 'dashboards', 'storycheck.json'), 'utf8'),
  ) as { panels: Panel[] };
  const out: { panel: string; expr: string }[] = [];
  const walk = (ps: Panel[]) => {
    for (const p of ps) {
      for (const t of p.targets ?? [])
        if (t.expr) out.push({ panel: p.title ?? '?', expr: t.expr });
      walk(p.panels ?? []);
    }
  };
  walk(d.panels);
  return out;
};

const PROMQL_WORDS = new Set([
  'sum',
  'min',
  'max',
  'avg',
  'count',
  'stddev',
  'stdvar',
  'topk',
  'bottomk',
  'quantile',
  'count_values',
  'group',
  'by',
  'without',
  'on',
  'ignoring',
  'group_left',
  'group_right',
  'and',
  'or',
  'unless',
  'offset',
  'bool',
  'rate',
  'irate',
  'increase',
  'delta',
  'idelta',
  'changes',
  'resets',
  'deriv',
  'predict_linear',
  'histogram_quantile',
  'clamp_min',
  'clamp_max',
  'clamp',
  'abs',
  'absent',
  'absent_over_time',
  'min_over_time',
  'max_over_time',
  'avg_over_time',
  'sum_over_time',
  'count_over_time',
  'last_over_time',
  'time',
  'vector',
  'scalar',
  'label_replace',
  'label_join',
  'round',
  'ceil',
  'floor',
  'sort',
  'sort_desc',
  'Inf',
  'NaN',
  'inf',
  'nan',
]);

/**
 * Metric names in a PromQL expression: strings, label matchers and grouping label lists are
 * removed, then every identifier that is not a function, keyword or aggregation is a metric.
 */
export function metricNames(expr: string): string[] {
  const bare = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, '""')
    .replace(/\{[^}]*\}/g, '')
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, '$1')
    .replace(/\[[^\]]*\]/g, '');
  const names = new Set<string>();
  for (const m of bare.matchAll(/(?<![\w:.])([A-Za-z_:][\w:]*)/g)) {
    const w = m[1]!;
    if (!PROMQL_WORDS.has(w)) names.add(w);
  }
  return [...names];
}

/** Names a Prometheus text exposition declares (`# TYPE`), histogram/summary series included. */
function exported(text: string): Set<string> {
  const out = new Set<string>();
  for (const m of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
    const [, name, type] = m as unknown as [string, string, string];
    out.add(name);
    if (type === 'histogram') for (const s of ['_bucket', '_sum', '_count']) out.add(name + s);
    if (type === 'summary') for (const s of ['_sum', '_count']) out.add(name + s);
  }
  return out;
}

describe('deploy/monitoring', () => {
  let tmp: string;
  beforeAll(() => {
    tmp = mkdtempSync(join(tmpdir(), 'sc-monitoring-'));
  });
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));

  const promtool = (args: string[]) =>
    spawnSync('promtool', args, { encoding: 'utf8', cwd: tmp, timeout: 60_000 });

  withPromtool('promtool check rules passes on alerts.yml', () => {
    const r = promtool(['check', 'rules', join(MON, 'alerts.yml')]);
    expect({ status: r.status, out: r.stdout + r.stderr }).toEqual({
      status: 0,
      out: expect.stringContaining('SUCCESS'),
    });
  });

  withPromtool('every PromQL expression of the dashboard parses (promtool)', () => {
    const exprs = dashboardExprs();
    expect(exprs.length).toBeGreaterThanOrEqual(20);
    // Grafana's own variables, should a panel use them, stand for a duration.
    const file = join(tmp, 'dashboard-rules.yml');
    writeFileSync(
      file,
      stringifyYaml({
        groups: [
          {
            name: 'dashboard',
            rules: exprs.map((e, i) => ({
              record: `dashboard:expr_${i}`,
              expr: e.expr.replace(/\$__(rate_)?interval|\$__range/g, '5m'),
            })),
          },
        ],
      }),
    );
    const r = promtool(['check', 'rules', file]);
    expect({ status: r.status, out: r.stdout + r.stderr }).toEqual({
      status: 0,
      out: expect.stringContaining(`SUCCESS: ${exprs.length} rules found`),
    });
  });

  withPromtool(
    'prometheus.yml, rendered as the compose service does, passes promtool check config',
    () => {
      const pw = join(tmp, 'board-password');
      writeFileSync(pw, 'secret');
      writeFileSync(join(tmp, 'alerts.yml'), readFileSync(join(MON, 'alerts.yml')));
      const cfg = readFileSync(join(MON, 'prometheus.yml'), 'utf8')
        .replace('@BOARD_USER@', 'admin')
        .replace('/prometheus/board-password', pw)
        .replace('/etc/storycheck/alerts.yml', join(tmp, 'alerts.yml'));
      writeFileSync(join(tmp, 'prometheus.yml'), cfg);
      const r = promtool(['check', 'config', join(tmp, 'prometheus.yml')]);
      expect({ status: r.status, out: r.stdout + r.stderr }).toEqual({
        status: 0,
        out: expect.stringContaining('SUCCESS'),
      });
    },
  );

  const HAS_COMPOSE = spawnSync('docker-compose', ['version', '--short']).status === 0;
  (HAS_COMPOSE ? it : it.skip)(
    'docker-compose: profile monitoring starts Prometheus and Grafana, provisioned from deploy/monitoring/',
    () => {
      const env = join(tmp, 'compose.env');
      writeFileSync(env, 'REDIS_PASSWORD=r\nPOSTGRES_PASSWORD=p\nBOARD_PASSWORD=b\n');
      const r = spawnSync(
        'docker-compose',
        ['--env-file', env, '-f', 'docker-compose.yml', '--profile', 'monitoring', 'config'],
        { cwd: ROOT, encoding: 'utf8', env: { PATH: process.env.PATH ?? '', HOME: tmp } },
      );
      expect({ status: r.status, stderr: r.stderr }).toEqual({ status: 0, stderr: '' });
      const services = (
        parseYaml(r.stdout) as {
          services: Record<string, { profiles?: string[]; volumes?: unknown[] }>;
        }
      ).services;
      for (const [name, mounts] of [
        ['prometheus', ['prometheus.yml', 'alerts.yml']],
        ['grafana', ['grafana/provisioning', 'grafana/dashboards']],
      ] as const) {
        const s = services[name];
        expect({ name, profiles: s?.profiles }).toEqual({ name, profiles: ['monitoring'] });
        // Every file it mounts from deploy/monitoring/ exists.
        const sources = (s?.volumes ?? []).map((v) =>
          typeof v === 'string' ? v.split(':')[0]! : String((v as { source: string }).source),
        );
        for (const m of mounts) {
          const src = sources.find((x) => x.endsWith(`deploy/monitoring/${m}`));
          expect({ name, m, src: src !== undefined && existsSync(src) }).toEqual({
            name,
            m,
            src: true,
          });
        }
      }
    },
  );

  it('every alert has a summary naming its runbook, one of docs/runbooks/', () => {
    const alerts = rules().filter((r) => r.alert);
    expect(alerts.length).toBeGreaterThanOrEqual(10);
    for (const a of alerts) {
      const runbook = a.annotations?.runbook ?? '';
      const m = /^docs\/runbooks\/([a-z-]+)\.md$/.exec(runbook);
      expect({ alert: a.alert, runbook: m?.[1] }).toEqual({
        alert: a.alert,
        runbook: expect.stringMatching(new RegExp(`^(${RUNBOOKS.join('|')})$`)),
      });
      expect({ alert: a.alert, summary: a.annotations?.summary }).toEqual({
        alert: a.alert,
        summary: expect.stringContaining(runbook),
      });
    }
    // What the operator must hear about, each covered by at least one rule.
    const exprs = rules()
      .map((r) => r.expr)
      .join('\n');
    for (const metric of [
      'storycheck_pool_no_usable_session',
      'storycheck_upstream_throttled_total',
      'storycheck_queue_jobs',
      'storycheck_checks_finished_total',
      'storycheck_redis_maxmemory_bytes',
      'storycheck_batch_eta_overrun_ratio',
      'storycheck_batches_stuck',
      'process_start_time_seconds',
    ])
      expect(exprs).toContain(metric);
  });

  it('finds metric names in PromQL', () => {
    expect(
      metricNames(
        'sum by (status) (rate(storycheck_checks_finished_total{status=~"a|b",job="x"}[5m] offset 1h)) / on () clamp_min(max without (instance, job) (up), 0.001) > Inf',
      ).sort(),
    ).toEqual(['storycheck_checks_finished_total', 'up']);
  });

  describe('every metric in the rules and the dashboard is exported', () => {
    let tdb: TestDatabase;
    let tp: TestPrefix;
    const procs: Spawned[] = [];
    let names: Set<string>;

    beforeAll(async () => {
      tdb = await createTestDatabase();
      tp = createTestPrefix();
      const env = {
        DATABASE_URL: tdb.url,
        REDIS_URL: TEST_REDIS_URL,
        STORYCHECK_PREFIX: tp.prefix,
        LOG_LEVEL: 'warn',
        IG_BASE_URL: 'http://127.0.0.1:9',
      };
      const migrated = await runNode(
        join(ROOT, 'apps/producer/dist/main.js'),
        ['db', 'migrate'],
        env,
      );
      expect(migrated.code).toBe(0);
      const workerPort = await freePort();
      const boardPort = await freePort();
      procs.push(
        spawnNode(join(ROOT, 'apps/worker/dist/main.js'), [], {
          ...env,
          WORKER_HTTP_PORT: String(workerPort),
        }),
        spawnNode(join(ROOT, 'apps/board/dist/main.js'), [], {
          ...env,
          BOARD_PORT: String(boardPort),
          BOARD_PASSWORD: 'monitoring-test',
        }),
      );
      const scrape = async (url: string, headers: Record<string, string> = {}) =>
        waitFor(
          async () => {
            const res = await fetch(url, { headers }).catch(() => null);
            return res?.ok ? await res.text() : undefined;
          },
          `metrics at ${url}`,
          150_000,
          250,
        );
      const auth = `Basic ${Buffer.from('admin:monitoring-test').toString('base64')}`;
      const [w, b] = await Promise.all([
        scrape(`http://127.0.0.1:${workerPort}/metrics`),
        scrape(`http://127.0.0.1:${boardPort}/metrics`, { authorization: auth }),
      ]);
      names = new Set([...exported(w as string), ...exported(b as string)]);
    }, 240_000);

    afterAll(async () => {
      await Promise.all(procs.map((p) => p.kill()));
      await tp?.clean();
      await tdb?.drop();
    });

    it('names only metrics a worker or the board exports (or `up`, set by Prometheus)', () => {
      expect(names.has('storycheck_checks_finished_total')).toBe(true);
      expect(names.has('storycheck_redis_memory_used_bytes')).toBe(true);
      const used = [
        ...rules().map((r) => ({ where: `alert ${r.alert}`, expr: r.expr })),
        ...dashboardExprs().map((d) => ({ where: `panel ${d.panel}`, expr: d.expr })),
      ];
      const unknown = used.flatMap(({ where, expr }) =>
        metricNames(expr)
          .filter((n) => n !== 'up' && !names.has(n))
          .map((n) => `${where}: ${n}`),
      );
      expect(unknown).toEqual([]);
    });
  });
});
