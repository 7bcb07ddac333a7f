/**
 * turborepo prints a telemetry notice (and sends anonymous usage data) unless
 * TURBO_TELEMETRY_DISABLED is set. Every place the project spawns turbo sets it: the root
 * package.json scripts, the Dockerfile's build, and the devtools scripts through lib.mjs's
 * turboEnv(). The first test runs the root `build` script the way a new operator would, with a
 * fresh HOME (no turborepo config yet), and expects no notice; the second finds every turbo
 * invocation in the project's scripts and checks that each one carries the variable.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

describe('turborepo telemetry is off in the project scripts', () => {
  it('`pnpm run build` on a fresh HOME prints no telemetry notice', () => {
    const home = mkdtempSync(join(tmpdir(), 'sc-turbo-home-'));
    try {
      const env: NodeJS.ProcessEnv = {
        ...process.env,
        HOME: home,
        XDG_CONFIG_HOME: join(home, '.config'),
      };
      delete env.TURBO_TELEMETRY_DISABLED;
      delete env.DO_NOT_TRACK;
      // --dry-run plans the build without running it: turbo starts, and would print the notice.
      const r = spawnSync(
        'pnpm',
        ['run', '--silent', 'build', '--dry-run=json', '--filter=@storycheck/config'],
        { cwd: ROOT, env, encoding: 'utf8', timeout: 180_000 },
      );
      expect(r.status).toBe(0);
      expect(`${r.stdout}${r.stderr}`).not.toMatch(
        /anonymous telemetry|turborepo.dev\/docs\/telemetry/i,
      );
    } finally {
      rmSync(home, { recursive: true, force: true });
    }
  });

  it('every turbo invocation (package.json, Dockerfile, devtools scripts) disables telemetry', () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
      scripts: Record<string, string>;
    };
    const turboScripts = Object.entries(pkg.scripts).filter(([, cmd]) => /\bturbo\b/.test(cmd));
    expect(turboScripts.length).toBeGreaterThan(0);
    for (const [name, cmd] of turboScripts)
      expect(`${name}: ${cmd}`).toMatch(/TURBO_TELEMETRY_DISABLED=1 turbo /);

    const docker = readFileSync(join(ROOT, 'Dockerfile'), 'utf8')
      .split('\n')
      .filter((l) => /\bturbo run\b/.test(l));
    expect(docker.length).toBeGreaterThan(0);
    for (const line of docker) expect(line).toMatch(/TURBO_TELEMETRY_DISABLED=1 /);

    const devtools = join(ROOT, 'packages', 'devtools');
    let spawns = 0;
    for (const f of readdirSync(devtools).filter((n) => n.endsWith('.mjs'))) {
      const src = readFileSync(join(devtools, f), 'utf8');
      // A spawn of turbo has 'turbo' as an argv element; each such spawn passes turboEnv().
      const turbo = src.match(/'turbo'/g)?.length ?? 0;
      const withEnv = src.match(/env: turboEnv\(\)/g)?.length ?? 0;
      spawns += turbo;
      expect({ file: f, spawnsWithTelemetryOff: withEnv }).toEqual({
        file: f,
        spawnsWithTelemetryOff: turbo,
      });
    }
    expect(spawns).toBeGreaterThanOrEqual(3);
  });
});
