/**
 * A strict-enough reader of the Prometheus text exposition format 0.0.4, for tests: every line
 * is `# HELP name text`, `# TYPE name type`, or a sample `name{label="value",…} value
 * [timestamp]`; every sample belongs to a family announced by HELP and TYPE before it. Values
 * follow Go's ParseFloat as Prometheus does: NaN and Inf in any letter case.
 */

/** One sample: metric name, labels, value. */
export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

const NAME = '[a-zA-Z_:][a-zA-Z0-9_:]*';
const LABEL = '[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\\\\n]|\\\\.)*"';
const SAMPLE = new RegExp(
  `^(${NAME})(?:\\{((?:${LABEL})(?:,${LABEL})*,?)?\\})?[ \\t]+` +
    `((?:[Nn][Aa][Nn])|[+-]?(?:[Ii]nf(?:inity)?)|[+-]?(?:\\d+\\.?\\d*|\\.\\d+)(?:[eE][+-]?\\d+)?)(?:[ \\t]+-?\\d+)?$`,
);
const HELP = new RegExp(`^# HELP (${NAME}) .*$`);
const TYPE = new RegExp(`^# TYPE (${NAME}) (counter|gauge|histogram|summary|untyped)$`);

/** Go's ParseFloat, which Prometheus uses, takes NaN and Inf in any case (prom-client writes `Nan`). */
function toNumber(v: string): number {
  if (/^nan$/i.test(v)) return Number.NaN;
  const inf = /^([+-]?)inf(inity)?$/i.exec(v);
  if (inf) return inf[1] === '-' ? -Infinity : Infinity;
  return Number(v);
}

/** Parses `text`; throws naming the first bad line. */
export function parsePrometheus(text: string): Sample[] {
  const help = new Set<string>();
  const types = new Map<string, string>();
  const samples: Sample[] = [];
  const lines = text.split('\n');
  lines.forEach((line, i) => {
    if (line === '') return;
    const where = `line ${i + 1}: ${JSON.stringify(line)}`;
    if (line.startsWith('#')) {
      const h = HELP.exec(line);
      if (h?.[1]) {
        help.add(h[1]);
        return;
      }
      const t = TYPE.exec(line);
      if (t?.[1] && t[2]) {
        types.set(t[1], t[2]);
        return;
      }
      throw new Error(`bad comment at ${where}`);
    }
    const m = SAMPLE.exec(line);
    if (!m?.[1] || m[3] === undefined) throw new Error(`bad sample at ${where}`);
    const name = m[1];
    const family = [name, name.replace(/_(bucket|sum|count)$/, '')].find((f) => types.has(f));
    if (!family || !help.has(family)) throw new Error(`sample without HELP/TYPE at ${where}`);
    const labels: Record<string, string> = {};
    for (const lm of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
      labels[lm[1]!] = lm[2]!.replace(/\\n/g, '\n').replace(/\\(["\\])/g, '$1');
    }
    samples.push({ name, labels, value: toNumber(m[3]) });
  });
  return samples;
}

/** The value of the one sample named `name` whose labels include `labels`; undefined if none. */
export function valueOf(
  samples: readonly Sample[],
  name: string,
  labels: Record<string, string> = {},
): number | undefined {
  const hits = samples.filter(
    (s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v),
  );
  if (hits.length > 1) throw new Error(`${name} ${JSON.stringify(labels)} matches ${hits.length}`);
  return hits[0]?.value;
}
