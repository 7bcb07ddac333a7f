/**
 * The manual against the repository and the code:
 * - every relative link in docs/ and the READMEs points at a file in the repository, and every
 *   `#anchor` at a heading of its page;
 * - every `storycheck …` command in a shell block names a real command with real flags (read
 *   from the CLI's commander program, in-process);
 * - every warn/error log message the code writes has a row in docs/troubleshooting.md;
 * - every Mermaid diagram parses, with the `mermaid` package in Debian's chromium (skipped with
 *   one message when /usr/bin/chromium, or CHROMIUM_PATH, is missing).
 */
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative, resolve } from 'node:path';
import { chromium, type Browser } from 'playwright-core';
import {
  ROOT,
  leafCommands,
  loadProgram,
  scanLogMessages,
  slugify,
  type CliCommand,
} from '../docs-gen.mjs';

/** Markdown files checked: docs/ (recursively) and every README of the repository. */
function markdownFiles(): string[] {
  const out: string[] = [];
  const walk = (dir: string) => {
    for (const name of readdirSync(join(ROOT, dir))) {
      const rel = dir ? `${dir}/${name}` : name;
      if (statSync(join(ROOT, rel)).isDirectory()) walk(rel);
      else if (name.endsWith('.md')) out.push(rel);
    }
  };
  walk('docs');
  out.push('README.md');
  for (const top of ['apps', 'packages'])
    for (const name of readdirSync(join(ROOT, top)))
      if (existsSync(join(ROOT, top, name, 'README.md'))) out.push(`${top}/${name}/README.md`);
  return out.sort();
}

/** Text outside fenced blocks, with inline code removed. */
function prose(text: string): string {
  return text.replace(/^(```|~~~)[\s\S]*?^\1/gm, '').replace(/`[^`\n]*`/g, '');
}

/** Fenced blocks: { lang, body }. */
function fences(text: string): Array<{ lang: string; body: string }> {
  return [...text.matchAll(/^```([\w-]*)\n([\s\S]*?)^```/gm)].map((m) => ({
    lang: m[1] ?? '',
    body: m[2] ?? '',
  }));
}

/** GitHub anchors of a page's headings (duplicates numbered -1, -2, …). */
function anchorsOf(text: string): Set<string> {
  const seen = new Map<string, number>();
  const out = new Set<string>();
  for (const m of prose(text.replace(/`/g, '')).matchAll(/^#{1,6} (.+)$/gm)) {
    const base = slugify(m[1]!);
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    out.add(n ? `${base}-${n}` : base);
  }
  return out;
}

describe('links in the manual', () => {
  it('every relative link resolves to a file in the repository, every anchor to a heading', () => {
    const problems: string[] = [];
    let checked = 0;
    for (const file of markdownFiles()) {
      const text = readFileSync(join(ROOT, file), 'utf8');
      for (const m of prose(text).matchAll(/\[[^\]]*\]\(([^)\s]+)(?:\s+"[^"]*")?\)/g)) {
        const target = m[1]!;
        if (/^[a-z]+:/i.test(target)) continue; // http:, https:, mailto:
        checked++;
        const [path, anchor] = target.split('#') as [string, string | undefined];
        const abs = path ? resolve(dirname(join(ROOT, file)), path) : join(ROOT, file);
        const rel = relative(ROOT, abs);
        if (rel.startsWith('..')) {
          problems.push(`${file}: link ${target} leaves the repository`);
          continue;
        }
        if (!existsSync(abs)) {
          problems.push(`${file}: link ${target} — no such file ${rel}`);
          continue;
        }
        if (anchor && abs.endsWith('.md') && !anchorsOf(readFileSync(abs, 'utf8')).has(anchor))
          problems.push(`${file}: link ${target} — no heading #${anchor} in ${rel}`);
      }
    }
    expect(problems).toEqual([]);
    expect(checked).toBeGreaterThan(50);
  });

  it('no page points at files outside the repository (CONTRACT.md, DESIGN.md, ../shared, …)', () => {
    const bad = markdownFiles().filter((f) =>
      /\b(CONTRACT|DESIGN|UPSTREAM|STYLE)\.md|\.\.\/shared/.test(
        readFileSync(join(ROOT, f), 'utf8'),
      ),
    );
    expect(bad).toEqual([]);
  });
});

/** `storycheck …` invocations in shell blocks: { file, line, words }. */
function shellCommands(): Array<{ file: string; line: string; words: string[] }> {
  const out: Array<{ file: string; line: string; words: string[] }> = [];
  for (const file of markdownFiles()) {
    for (const f of fences(readFileSync(join(ROOT, file), 'utf8'))) {
      if (!['sh', 'bash', 'shell', 'console'].includes(f.lang)) continue;
      for (const raw of f.body.split('\n')) {
        const line = raw.replace(/\s+#.*$/, '');
        const re =
          /(?:^|[\s;|&(]|\$\()(?:node_modules\/\.bin\/|pnpm |docker compose run --rm (?:-T )?producer(?= ))?(?:storycheck|(?<=producer)) +([^|;&#>)]*)/g;
        for (const m of line.matchAll(re)) {
          const words = (m[1] ?? '').trim().split(/\s+/).filter(Boolean);
          if (words.length) out.push({ file, line: raw.trim(), words });
        }
      }
    }
  }
  return out;
}

/** Checks one invocation against the program; returns a problem or null. */
function checkInvocation(program: CliCommand, words: string[]): string | null {
  let cmd = program;
  let i = 0;
  while (cmd.commands.length && i < words.length) {
    const next = cmd.commands.find((c) => c.name() === words[i]);
    if (!next) return `no command "${words.slice(0, i + 1).join(' ')}"`;
    cmd = next;
    i++;
  }
  if (cmd.commands.length) return `"${words.join(' ')}" names a command group, not a command`;
  const longs = new Set(cmd.options.map((o) => o.long));
  longs.add('--help');
  for (const w of words.slice(i)) {
    const flag = /^--[a-z][a-z-]*/.exec(w)?.[0];
    if (flag && !longs.has(flag))
      return `"storycheck ${words.slice(0, i).join(' ')}" has no flag ${flag}`;
  }
  return null;
}

describe('storycheck commands in the manual', () => {
  it('every command in a shell block exists and uses only its flags', async () => {
    const program = await loadProgram();
    const invocations = shellCommands();
    const problems = invocations
      .map((c) => ({ c, p: checkInvocation(program, c.words) }))
      .filter((x) => x.p)
      .map((x) => `${x.c.file}: ${x.c.line} — ${x.p}`);
    expect(problems).toEqual([]);
    // The scan finds the commands (and so can fail): every leaf command appears somewhere.
    const used = new Set(invocations.flatMap((c) => [c.words[0], c.words.slice(0, 2).join(' ')]));
    const unused = leafCommands(program)
      .map((l) => l.path)
      .filter((p) => !used.has(p));
    expect(unused).toEqual([]);
  });

  it('the check itself rejects an unknown command and an unknown flag', async () => {
    const program = await loadProgram();
    expect(checkInvocation(program, ['batches', 'frobnicate'])).toMatch(/no command/);
    expect(checkInvocation(program, ['status', 'x', '--colour'])).toMatch(/no flag --colour/);
    expect(checkInvocation(program, ['status', 'x', '--json'])).toBeNull();
  });
});

describe('docs/troubleshooting.md', () => {
  it('has every warn/error log message of the code', () => {
    const page = readFileSync(join(ROOT, 'docs/troubleshooting.md'), 'utf8');
    const messages = scanLogMessages();
    const missing = [...messages]
      .filter(([msg]) => !page.includes('`' + msg))
      .map(([msg, file]) => `log message "${msg}" (${file}) is not in docs/troubleshooting.md`);
    expect(missing).toEqual([]);
    expect(messages.size).toBeGreaterThan(15);
  });
});

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const HAS_CHROMIUM = existsSync(CHROMIUM);
if (!HAS_CHROMIUM)
  process.stderr.write(
    `docs Mermaid test SKIPPED: ${CHROMIUM} not found; install Debian's chromium ` +
      '(apt-get install -y chromium) to run it\n',
  );
const describeBrowser = HAS_CHROMIUM ? describe : describe.skip;

describeBrowser(`Mermaid diagrams parse (${CHROMIUM})`, () => {
  let browser: Browser;
  beforeAll(async () => {
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--no-sandbox', '--disable-background-networking'],
    });
  });
  afterAll(async () => {
    await browser?.close();
  });

  it('every ```mermaid block in docs/ parses, and a broken one does not', async () => {
    const require = createRequire(import.meta.url);
    const script = join(dirname(require.resolve('mermaid/package.json')), 'dist', 'mermaid.min.js');
    const page = await browser.newPage();
    await page.setContent('<!doctype html><html><body></body></html>');
    await page.addScriptTag({ path: script });
    const parse = (text: string) =>
      page.evaluate(async (t) => {
        const m = (globalThis as unknown as { mermaid: { parse(t: string): Promise<unknown> } })
          .mermaid;
        try {
          await m.parse(t);
          return 'ok';
        } catch (e) {
          return String((e as Error).message ?? e)
            .split('\n')
            .slice(0, 3)
            .join(' ');
        }
      }, text);
    const diagrams = markdownFiles()
      .filter((f) => f.startsWith('docs/'))
      .flatMap((f) =>
        fences(readFileSync(join(ROOT, f), 'utf8'))
          .filter((x) => x.lang === 'mermaid')
          .map((x) => ({ file: f, body: x.body })),
      );
    const problems: string[] = [];
    for (const d of diagrams) {
      const r = await parse(d.body);
      if (r !== 'ok') problems.push(`${d.file}: "${d.body.split('\n')[0]}" — ${r}`);
    }
    expect(problems).toEqual([]);
    expect(diagrams.length).toBeGreaterThanOrEqual(7);
    expect(await parse('flowchart LR\n  a -->')).not.toBe('ok');
  });
});
