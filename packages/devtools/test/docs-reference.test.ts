/**
 * The generated reference pages (docs/cli.md, configuration.md, errors.md, metrics.md) against
 * the code, read directly: every command and flag of the CLI program, every variable and default
 * of the config schema, every error code and class in the sources, every Prometheus metric of
 * the worker and the board has its entry, and nothing is documented that the code lacks. Last,
 * each page equals what packages/devtools/docs-gen.mjs produces now (`npm run docs:gen`).
 * Needs the workspace built (dist/): docs-gen.mjs imports the built modules by path.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  ROOT,
  collectMetrics,
  configDefaults,
  generate,
  leafCommands,
  loadProgram,
  scanErrorClasses,
  scanErrorCodes,
  scanMetricNames,
  splitSections,
} from '../docs-gen.mjs';

const page = (rel: string): string => readFileSync(join(ROOT, rel), 'utf8');

/** Rows of every Markdown table in `text`, split into trimmed cells. */
function tableRows(text: string): string[][] {
  return text
    .split('\n')
    .filter((l) => /^\|.*\|$/.test(l.trim()) && !/^\|\s*-/.test(l.trim()))
    .map((l) =>
      l
        .trim()
        .slice(1, -1)
        .split(/(?<!\\)\|/)
        .map((c) => c.trim()),
    );
}

const unquote = (c: string): string => c.replace(/^`|`$/g, '');

describe('docs/cli.md covers the CLI exactly', () => {
  it('has a section per command and the same flags in each, both ways', async () => {
    const program = await loadProgram();
    const leaves = leafCommands(program);
    const { sections } = splitSections(page('docs/cli.md'));
    const documented = [...sections.keys()].filter((h) => h.startsWith('storycheck '));
    const missing: string[] = [];
    for (const { path } of leaves)
      if (!sections.has(`storycheck ${path}`))
        missing.push(`command "storycheck ${path}" is not on docs/cli.md`);
    const codePaths = new Set(leaves.map((l) => `storycheck ${l.path}`));
    for (const h of documented)
      if (!codePaths.has(h)) missing.push(`docs/cli.md documents "${h}", which the CLI lacks`);
    for (const { path, cmd } of leaves) {
      const body = sections.get(`storycheck ${path}`) ?? '';
      const onPage = new Set(
        tableRows(body)
          .map((r) => unquote(r[0] ?? ''))
          .filter((c) => c.startsWith('-'))
          .map((c) => /--[a-z][a-z-]*/.exec(c)?.[0]),
      );
      const inCode = new Set(cmd.options.map((o) => o.long));
      for (const f of inCode)
        if (!onPage.has(f)) missing.push(`flag ${f} of "storycheck ${path}" is not on docs/cli.md`);
      for (const f of onPage)
        if (!inCode.has(f))
          missing.push(`docs/cli.md lists flag ${f} for "storycheck ${path}", which it lacks`);
    }
    expect(missing).toEqual([]);
    expect(leaves.length).toBeGreaterThan(10);
  });
});

describe('docs/configuration.md covers the schema exactly', () => {
  it('lists every variable with the schema default, and no other', async () => {
    const { schemaKeys, defaults } = await configDefaults();
    const rows = tableRows(page('docs/configuration.md')).filter((r) =>
      /^`[A-Z_0-9]+`$/.test(r[0] ?? ''),
    );
    const onPage = new Map(rows.map((r) => [unquote(r[0]!), unquote(r[2] ?? '')]));
    const problems: string[] = [];
    for (const k of schemaKeys) {
      if (!onPage.has(k)) problems.push(`variable ${k} is missing from docs/configuration.md`);
      else if (onPage.get(k) !== defaults.get(k))
        problems.push(
          `variable ${k}: docs/configuration.md says default ${onPage.get(k)}, the schema ${defaults.get(k)}`,
        );
    }
    for (const k of onPage.keys())
      if (!schemaKeys.includes(k))
        problems.push(`docs/configuration.md lists ${k}, which the schema lacks`);
    expect(problems).toEqual([]);
    expect(schemaKeys.length).toBeGreaterThan(30);
  });
});

describe("the README's configuration table", () => {
  it('names only variables of the schema, all of them, with their defaults', async () => {
    const { schemaKeys, defaults } = await configDefaults();
    const readme = page('README.md');
    const section = readme.slice(
      readme.indexOf('\n## Configuration'),
      readme.indexOf('\n## Docker'),
    );
    const problems: string[] = [];
    const seen = new Set<string>();
    for (const row of tableRows(section).slice(1)) {
      // `A` / `B` (or `A` / `_SUFFIX`) with defaults `x` / `y`.
      const names: string[] = [];
      for (const n of (row[0] ?? '').split(' / ').map(unquote)) {
        const prev = names[names.length - 1];
        names.push(n.startsWith('_') && prev ? prev.slice(0, prev.lastIndexOf('_')) + n : n);
      }
      const defs = (row[1] ?? '').split(' / ');
      names.forEach((n, i) => {
        seen.add(n);
        if (!schemaKeys.includes(n)) {
          problems.push(`README lists ${n}, which the schema lacks`);
          return;
        }
        const d = defs.length === names.length ? defs[i]!.trim() : undefined;
        if (d && /^`[^`]*`$/.test(d) && unquote(d) !== defaults.get(n))
          problems.push(
            `README says ${n} defaults to ${unquote(d)}, the schema ${defaults.get(n)}`,
          );
        if (d === 'unset' && defaults.get(n) !== 'unset')
          problems.push(`README says ${n} is unset by default, the schema ${defaults.get(n)}`);
      });
    }
    for (const k of schemaKeys) if (!seen.has(k)) problems.push(`README's table lacks ${k}`);
    expect(problems).toEqual([]);
    expect(seen.size).toBeGreaterThan(30);
  });
});

describe('docs/errors.md covers every error code and class', () => {
  it('has an entry per code found in the sources and names every error class', () => {
    const text = page('docs/errors.md');
    const { sections } = splitSections(text, 3);
    const problems: string[] = [];
    const codes = scanErrorCodes();
    for (const [c, file] of codes)
      if (!sections.get(`\`${c}\``))
        problems.push(`error code ${c} (${file}) has no entry in docs/errors.md`);
    for (const [cls, file] of scanErrorClasses())
      if (!text.includes(`\`${cls}\``))
        problems.push(`error class ${cls} (${file}) is not named in docs/errors.md`);
    expect(problems).toEqual([]);
    // The scan finds the taxonomy (a scan that finds nothing would pass vacuously).
    for (const c of ['throttled', 'session_dead', 'proxy_error', 'client_bug', 'budget_wait'])
      expect(codes.has(c)).toBe(true);
  });
});

describe('docs/metrics.md covers every metric', () => {
  it('has an entry per metric of the worker and board registries, and no other', async () => {
    const metrics = await collectMetrics();
    const { sections } = splitSections(page('docs/metrics.md'), 3);
    const problems: string[] = [];
    const names = new Set([...metrics.keys(), ...scanMetricNames().keys()]);
    for (const name of names)
      if (!sections.get(`\`${name}\``))
        problems.push(`metric ${name} has no entry in docs/metrics.md`);
    for (const h of sections.keys()) {
      const name = /^`(\w+)`$/.exec(h)?.[1];
      if (name && !metrics.has(name))
        problems.push(`docs/metrics.md documents ${name}, which no registry exports`);
    }
    expect(problems).toEqual([]);
    expect(metrics.size).toBeGreaterThan(5);
  });
});

describe('generated pages are current', () => {
  it('the generator reports no missing entry and each page equals its output', async () => {
    const { pages, problems } = await generate();
    expect(problems).toEqual([]);
    const stale = [...pages]
      .filter(([rel, text]) => page(rel) !== text)
      .map(([rel]) => `${rel} is stale: run npm run docs:gen`);
    expect(stale).toEqual([]);
  });
});
