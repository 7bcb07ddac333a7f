#!/usr/bin/env node
// `npm run test:containers`: builds the Dockerfile and runs docker-compose.yml for real, with
// podman (Debian's) behind Debian's docker-compose 1.29, and no container registry at all:
//
//  1. installs podman, runc, netavark/aardvark-dns, mmdebstrap and docker-compose from Debian
//     (`apt-get update` once, only when something is missing) and writes a containers.conf that
//     works on this kind of machine (ulimits, runc, cgroupfs, file events);
//  2. builds local stand-ins for the official images — a Debian base (mmdebstrap), node (the
//     host's Node copied in, with the host's CA bundle), redis and postgres (Debian packages) —
//     each tagged with a hash of its inputs, so a later run reuses them;
//  3. builds the project image with `--build-arg NODE_IMAGE=<stand-in>` and checks it: non-root
//     user, no devDependency, no source map;
//  4. `docker-compose --profile demo up -d --scale worker=2` against `podman system service`,
//     with an override file (written here, used only here) naming the redis/postgres stand-ins;
//     a loop of `podman healthcheck run` stands in for the systemd timers podman would use;
//  5. checks: every service healthy, migrate exited 0, the demo batch completed 200/200, the
//     README's producer commands (enqueue --wait, status, results) round trip, no secret in any
//     log, and `docker-compose stop worker` drains both workers with exit 0;
//  6. tears everything down (containers, volumes, network, the API service), also on failure or
//     a signal. The images stay cached.
//
// Prints the image size, its build time and the stack's start time; the last line is
// "N passed, N failed". Exit 0 when all passed, 1 otherwise, 77 when it cannot run here (not
// root, no apt-get, the packages cannot be installed): .ci/run prints one line and goes on.
// Every step has a deadline; the whole run is capped by STORYCHECK_CONTAINERS_DEADLINE (seconds,
// default 1500). Cache and logs: STORYCHECK_CONTAINERS_CACHE (default /var/cache/storycheck-containers).
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import {
  cpSync,
  createReadStream,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  readdirSync,
  realpathSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { ROOT, freePort } from './lib.mjs';

const CACHE = process.env.STORYCHECK_CONTAINERS_CACHE || '/var/cache/storycheck-containers';
const DEADLINE_S = Number(process.env.STORYCHECK_CONTAINERS_DEADLINE || 1500);
const MIRROR = 'http://deb.debian.org/debian';
const SUITE = 'bookworm';
const APP_IMAGE = 'localhost/storycheck-ci/app:latest';
const PROJECT = `storycheck-ci-${process.pid}`;
const SKIP = 77;

const t0 = Date.now();
const secs = (ms) => `${(ms / 1000).toFixed(0)} s`;
const work = mkdtempSync(join(tmpdir(), 'storycheck-containers-'));
const logFile = join(work, 'run.log');
let passed = 0;
let failed = 0;
const children = new Set();

function say(line) {
  process.stdout.write(`containers: ${line}\n`);
}
function check(name, ok, detail = '') {
  if (ok) passed++;
  else failed++;
  say(`${ok ? 'ok  ' : 'FAIL'} ${name}${!ok && detail ? ` — ${detail}` : ''}`);
  return ok;
}

/**
 * Runs a command without a shell; resolves { code, out, err } (code 124 after the timeout, when
 * the whole process group is killed). Output is kept and appended to the run log unless
 * `record` is false (engine metadata: it holds every container's environment and command).
 */
function exec(cmd, args, { timeoutMs = 120_000, env, input, cwd = ROOT, record = true } = {}) {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, {
      cwd,
      env: env ?? process.env,
      detached: true,
      stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    });
    children.add(child);
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    if (input !== undefined) child.stdin.end(input);
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }, timeoutMs);
    const finish = (code) => {
      clearTimeout(timer);
      children.delete(child);
      const text = record ? `${out}${err}` : '(output not recorded)\n';
      writeFileSync(logFile, `$ ${cmd} ${args.join(' ')}\n${text}[exit ${code}]\n`, {
        flag: 'a',
      });
      resolve({ code, out, err });
    };
    child.on('error', (e) => {
      err += e.message;
      finish(127);
    });
    child.on('close', (code, signal) => finish(timedOut ? 124 : (code ?? (signal ? 128 : 1))));
  });
}

/** exec() that throws (one line, with the tail of its output) unless the command exits 0. */
async function must(what, cmd, args, opts) {
  const r = await exec(cmd, args, opts);
  if (r.code !== 0) {
    const tail = `${r.out}${r.err}`.trim().split('\n').slice(-15).join('\n');
    throw new Error(
      `${what} failed (${r.code === 124 ? 'timed out' : `exit ${r.code}`}): ${cmd} ${args.join(' ')}\n${tail}`,
    );
  }
  return r;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const sha = (...parts) => {
  const h = createHash('sha256');
  for (const p of parts) h.update(p).update('\0');
  return h.digest('hex').slice(0, 16);
};
function fileSha(path) {
  return new Promise((resolve, reject) => {
    const h = createHash('sha256');
    createReadStream(path)
      .on('data', (d) => h.update(d))
      .on('end', () => resolve(h.digest('hex')))
      .on('error', reject);
  });
}

// ---- 1. packages and configuration -----------------------------------------------------------

const NEEDED = [
  ['podman', 'podman'],
  ['runc', 'runc'],
  ['mmdebstrap', 'mmdebstrap'],
  ['docker-compose', 'docker-compose'],
  ['/usr/lib/podman/netavark', 'netavark'],
  ['/usr/lib/podman/aardvark-dns', 'aardvark-dns'],
  ['iptables', 'iptables'],
];

async function have(cmd) {
  if (cmd.startsWith('/')) return existsSync(cmd);
  return (await exec('sh', ['-c', `command -v ${cmd}`], { timeoutMs: 10_000 })).code === 0;
}

async function install() {
  const missing = [];
  for (const [cmd, pkg] of NEEDED) if (!(await have(cmd))) missing.push(pkg);
  if (missing.length === 0) return true;
  say(`installing ${missing.join(' ')} (Debian)`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const apt = ['-y', '-q', '--no-install-recommends', 'install', ...missing];
  const upd = await exec('apt-get', ['update', '-q'], { timeoutMs: 300_000, env });
  if (upd.code !== 0) say('apt-get update failed; trying the package lists there are');
  const r = await exec('apt-get', apt, { timeoutMs: 600_000, env });
  return r.code === 0;
}

const CONTAINERS_CONF = `# Written by packages/devtools/containers.mjs (podman 4.3 as root on a CI machine):
# the default ulimits fail on setrlimit, crun and the systemd cgroup manager on a hybrid cgroup
# layout, and journald events without systemd.
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"

[network]
network_backend = "netavark"
`;

// ---- 2. base images ----------------------------------------------------------------------------

const MMDEBSTRAP_ARGS = [
  '--quiet',
  '--variant=minbase',
  '--include=ca-certificates,libstdc++6',
  '--mode=root',
  SUITE,
];

async function imageExists(tag) {
  return (await exec('podman', ['image', 'exists', tag], { timeoutMs: 30_000 })).code === 0;
}

/** Builds `tag` from a Containerfile and extra files unless an image with that tag exists. */
async function buildBase(name, tag, containerfile, files = {}) {
  if (await imageExists(tag)) {
    say(`base ${name}: cached (${tag})`);
    return;
  }
  const ctx = join(work, `ctx-${name}`);
  mkdirSync(ctx, { recursive: true });
  writeFileSync(join(ctx, 'Containerfile'), containerfile);
  for (const [dest, src] of Object.entries(files)) {
    if (typeof src === 'string') cpSync(src, join(ctx, dest), { recursive: true });
    else writeFileSync(join(ctx, dest), src.text, { mode: src.mode ?? 0o644 });
  }
  const t = Date.now();
  await must(
    `building the ${name} base image`,
    'podman',
    ['build', '--network=host', '-q', '-t', tag, ctx],
    {
      timeoutMs: 600_000,
    },
  );
  say(`base ${name}: built in ${secs(Date.now() - t)} (${tag})`);
}

const POSTGRES_ENTRYPOINT = `#!/bin/sh
# Stand-in for the official postgres image's entrypoint: on an empty PGDATA, initdb with
# POSTGRES_USER / POSTGRES_PASSWORD (from a file, never a command line), create POSTGRES_DB, accept
# password logins from the network; then run postgres as the postgres user.
set -eu
export PATH=/usr/lib/postgresql/15/bin:$PATH
PGDATA=\${PGDATA:-/var/lib/postgresql/data}
mkdir -p "$PGDATA" /var/run/postgresql
chown postgres:postgres "$PGDATA" /var/run/postgresql
chmod 700 "$PGDATA"
as_pg() { setpriv --reuid=postgres --regid=postgres --init-groups "$@"; }
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  user=\${POSTGRES_USER:-postgres}
  pw=$(mktemp)
  printf '%s\\n' "\${POSTGRES_PASSWORD:?POSTGRES_PASSWORD is not set}" > "$pw"
  chown postgres "$pw"
  as_pg initdb -D "$PGDATA" -U "$user" --pwfile="$pw" --auth-local=trust --auth-host=scram-sha-256 >/dev/null
  rm -f "$pw"
  echo "listen_addresses = '*'" >> "$PGDATA/postgresql.conf"
  echo "host all all all scram-sha-256" >> "$PGDATA/pg_hba.conf"
  # A private socket directory while initialising: the healthcheck must not see this server.
  mkdir -p /tmp/pginit && chown postgres /tmp/pginit
  as_pg pg_ctl -D "$PGDATA" -o "-c listen_addresses= -c unix_socket_directories=/tmp/pginit" -w start >/dev/null
  if [ -n "\${POSTGRES_DB:-}" ] && [ "$POSTGRES_DB" != postgres ]; then
    as_pg createdb -h /tmp/pginit -U "$user" "$POSTGRES_DB"
  fi
  as_pg pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
fi
[ "\${1:-}" = postgres ] && shift
exec setpriv --reuid=postgres --regid=postgres --init-groups postgres -D "$PGDATA" "$@"
`;

async function baseImages() {
  // Debian: mmdebstrap into a tarball, imported.
  const debian = `localhost/storycheck-ci/debian:${sha('debian', MIRROR, ...MMDEBSTRAP_ARGS)}`;
  if (await imageExists(debian)) {
    say(`base debian: cached (${debian})`);
  } else {
    const t = Date.now();
    const tar = join(work, 'debian.tar');
    await must('mmdebstrap', 'mmdebstrap', [...MMDEBSTRAP_ARGS, tar, MIRROR], {
      timeoutMs: 600_000,
    });
    await must('podman import', 'podman', ['import', tar, debian], { timeoutMs: 300_000 });
    rmSync(tar, { force: true });
    say(`base debian: built in ${secs(Date.now() - t)} (${debian})`);
  }

  // node: Node 20.19+ is not in bookworm (18), so the host's node and npm are copied in, with
  // the host's CA bundle (the build's `pnpm fetch` reaches the registry through it).
  const nodeBin = realpathSync(process.execPath);
  const npmDir = [
    join(dirname(dirname(nodeBin)), 'lib', 'node_modules', 'npm'),
    '/usr/lib/node_modules/npm',
    '/usr/local/lib/node_modules/npm',
  ].find((d) => existsSync(join(d, 'package.json')));
  if (!npmDir) throw new Error('cannot find the host npm next to node');
  const caBundle = process.env.NODE_EXTRA_CA_CERTS || '/etc/ssl/certs/ca-certificates.crt';
  const nodeFile = `FROM ${debian}
COPY node /usr/local/bin/node
COPY npm /usr/local/lib/node_modules/npm
COPY host-ca.crt /etc/ssl/certs/host-ca.crt
RUN ln -s ../lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm \\
 && ln -s ../lib/node_modules/npm/bin/npx-cli.js /usr/local/bin/npx \\
 && echo 'node:x:1000:1000::/home/node:/bin/sh' >> /etc/passwd \\
 && echo 'node:x:1000:' >> /etc/group \\
 && mkdir -p /home/node && chown 1000:1000 /home/node \\
 && node --version
ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/host-ca.crt
CMD ["node"]
`;
  const npmVersion = JSON.parse(readFileSync(join(npmDir, 'package.json'), 'utf8')).version;
  const nodeTag = `localhost/storycheck-ci/node:${sha(
    nodeFile,
    await fileSha(nodeBin),
    npmVersion,
    await fileSha(caBundle),
  )}`;
  await buildBase('node', nodeTag, nodeFile, {
    node: nodeBin,
    npm: npmDir,
    'host-ca.crt': caBundle,
  });

  const redisFile = `FROM ${debian}
RUN apt-get update -q && apt-get install -y -q --no-install-recommends redis-server \\
 && rm -rf /var/lib/apt/lists/* && mkdir -p /data
WORKDIR /data
EXPOSE 6379
CMD ["redis-server"]
`;
  const redisTag = `localhost/storycheck-ci/redis:${sha(redisFile)}`;
  await buildBase('redis', redisTag, redisFile);

  const pgFile = `FROM ${debian}
RUN mkdir -p /etc/postgresql-common \\
 && echo 'create_main_cluster = false' > /etc/postgresql-common/createcluster.conf \\
 && apt-get update -q && apt-get install -y -q --no-install-recommends postgresql-15 \\
 && rm -rf /var/lib/apt/lists/*
COPY entrypoint.sh /usr/local/bin/postgres-entrypoint
ENV PATH=/usr/lib/postgresql/15/bin:$PATH PGDATA=/var/lib/postgresql/data
EXPOSE 5432
STOPSIGNAL SIGINT
ENTRYPOINT ["/usr/local/bin/postgres-entrypoint"]
CMD ["postgres"]
`;
  const pgTag = `localhost/storycheck-ci/postgres:${sha(pgFile, POSTGRES_ENTRYPOINT)}`;
  await buildBase('postgres', pgTag, pgFile, {
    'entrypoint.sh': { text: POSTGRES_ENTRYPOINT, mode: 0o755 },
  });
  return { nodeTag, redisTag, pgTag };
}

// ---- 3. the project image --------------------------------------------------------------------

/** Names in `dependencies` / `devDependencies` over every package.json of the workspace. */
function workspaceDeps() {
  const files = [join(ROOT, 'package.json')];
  for (const dir of ['apps', 'packages']) {
    for (const d of readdirSync(join(ROOT, dir))) {
      const f = join(ROOT, dir, d, 'package.json');
      if (existsSync(f)) files.push(f);
    }
  }
  const prod = new Set();
  const dev = new Set();
  for (const f of files) {
    const p = JSON.parse(readFileSync(f, 'utf8'));
    Object.keys(p.dependencies ?? {}).forEach((n) => prod.add(n));
    Object.keys(p.devDependencies ?? {}).forEach((n) => dev.add(n));
  }
  return { prod, dev };
}

// Runs inside the image (as its user): who it is, every *.map under /app, and the packages
// installed under each app (top level and pnpm's virtual store).
const INSPECT_SCRIPT = `
const fs = require('fs'), path = require('path');
const maps = [];
const walk = (d) => { for (const e of fs.readdirSync(d, { withFileTypes: true })) {
  const p = path.join(d, e.name);
  if (e.isDirectory()) walk(p); else if (e.name.endsWith('.map')) maps.push(p); } };
walk('/app');
const pkgs = new Set();
for (const app of fs.readdirSync('/app/apps')) {
  const nm = path.join('/app/apps', app, 'node_modules');
  if (!fs.existsSync(nm)) continue;
  for (const e of fs.readdirSync(nm)) {
    if (e === '.pnpm') { for (const v of fs.readdirSync(path.join(nm, e))) {
      const m = /^(@[^+]+\\+[^@]+|[^@]+)@/.exec(v); if (m) pkgs.add(m[1].replace('+', '/')); } }
    else if (e.startsWith('@')) { for (const s of fs.readdirSync(path.join(nm, e))) pkgs.add(e + '/' + s); }
    else if (!e.startsWith('.')) pkgs.add(e);
  }
}
console.log(JSON.stringify({ uid: process.getuid(), maps, pkgs: [...pkgs] }));
`;

async function buildApp(nodeTag) {
  const t = Date.now();
  const r = await exec(
    'podman',
    [
      'build',
      '--network=host',
      '--build-arg',
      `NODE_IMAGE=${nodeTag}`,
      '-t',
      APP_IMAGE,
      '-f',
      'Dockerfile',
      '.',
    ],
    { timeoutMs: 1_200_000 },
  );
  const buildMs = Date.now() - t;
  if (
    !check(
      `the Dockerfile builds (${secs(buildMs)})`,
      r.code === 0,
      `exit ${r.code}; see ${logFile}`,
    )
  ) {
    say(`${`${r.out}${r.err}`.trim().split('\n').slice(-20).join('\n')}`);
    return false;
  }
  const size = Number(
    (await exec('podman', ['image', 'inspect', '--format', '{{.Size}}', APP_IMAGE])).out,
  );
  say(`image ${APP_IMAGE}: ${(size / 1e6).toFixed(0)} MB, built in ${secs(buildMs)}`);

  const user = (
    await exec('podman', ['image', 'inspect', '--format', '{{.Config.User}}', APP_IMAGE])
  ).out.trim();
  const ins = await exec(
    'podman',
    ['run', '--rm', '--network=none', '--entrypoint', 'node', APP_IMAGE, '-e', INSPECT_SCRIPT],
    {
      timeoutMs: 120_000,
    },
  );
  let seen;
  try {
    seen = JSON.parse(ins.out.trim().split('\n').pop());
  } catch {
    check(
      'the image can be inspected from inside',
      false,
      `exit ${ins.code}: ${ins.err.trim().slice(-300)}`,
    );
    return true;
  }
  check(
    `the image runs as a non-root user (${user}, uid ${seen.uid})`,
    user !== '' && user !== 'root' && seen.uid !== 0,
  );
  check(
    'no source map under /app',
    seen.maps.length === 0,
    `${seen.maps.length}: ${seen.maps.slice(0, 5).join(' ')}`,
  );
  const { prod, dev } = workspaceDeps();
  const devOnly = [...dev].filter((n) => !prod.has(n));
  const inside = new Set(seen.pkgs);
  const leaked = devOnly.filter((n) => inside.has(n));
  check(
    `no devDependency in the image (${devOnly.length} dev-only names, ${inside.size} packages inside)`,
    leaked.length === 0,
    leaked.join(' '),
  );
  return true;
}

// ---- 4. the compose stack ----------------------------------------------------------------------

let service; // the podman API service (child process)
let composeArgs; // docker-compose's leading arguments
let composeEnv;
let stopHealthLoop = false;
let healthLoop;
let secrets = [];

function apiPing(sock) {
  return new Promise((resolve) => {
    const req = http.get({ socketPath: sock, path: '/_ping', timeout: 2000 }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on('error', () => resolve(false));
    req.on('timeout', () => {
      req.destroy();
      resolve(false);
    });
  });
}

const compose = (args, opts = {}) =>
  exec('docker-compose', [...composeArgs, ...args], { env: composeEnv, ...opts });

/** The project's containers: [{ id, name, service, state }] (state: running, exited, …). */
async function containers() {
  const r = await exec(
    'podman',
    ['ps', '-a', '--filter', `label=com.docker.compose.project=${PROJECT}`, '--format', 'json'],
    { record: false },
  );
  let list;
  try {
    list = JSON.parse(r.out || '[]');
  } catch {
    list = [];
  }
  return list.map((c) => ({
    id: c.Id,
    name: (c.Names ?? [])[0],
    service: c.Labels?.['com.docker.compose.service'],
    state: c.State,
  }));
}

async function inspect(id, format) {
  return (await exec('podman', ['inspect', '--format', format, id])).out.trim();
}

/** Podman without systemd never runs healthchecks by itself: this loop does, every 2 s. */
async function runHealthchecks() {
  while (!stopHealthLoop) {
    const running = (await containers()).filter((c) => c.state === 'running');
    await Promise.all(
      running.map((c) => exec('podman', ['healthcheck', 'run', c.id], { timeoutMs: 30_000 })),
    );
    await sleep(2000);
  }
}

async function startStack({ redisTag, pgTag }) {
  const sock = join(work, 'podman.sock');
  service = spawn('podman', ['system', 'service', '--time=0', `unix://${sock}`], {
    stdio: [
      'ignore',
      openSync(join(work, 'podman-service.log'), 'a'),
      openSync(join(work, 'podman-service.log'), 'a'),
    ],
  });
  for (let i = 0; i < 60 && !(await apiPing(sock)); i++) await sleep(500);
  if (!(await apiPing(sock)))
    throw new Error('podman system service did not answer on its socket within 30 s');

  const data = join(work, 'data');
  mkdirSync(data);
  secrets = [0, 1, 2].map(() => randomBytes(24).toString('hex'));
  const envFile = join(work, 'compose.env');
  writeFileSync(
    envFile,
    Object.entries({
      REDIS_PASSWORD: secrets[0],
      POSTGRES_PASSWORD: secrets[1],
      BOARD_PASSWORD: secrets[2],
      STORYCHECK_IMAGE: APP_IMAGE,
      IG_BASE_URL: 'http://sim:4100',
      BOARD_PUBLISH_PORT: String(await freePort()),
      LOG_LEVEL: 'info',
    })
      .map(([k, v]) => `${k}=${v}\n`)
      .join(''),
    { mode: 0o600 },
  );
  // Only here: the official redis/postgres images replaced by the local stand-ins, and the
  // producer's ./data mount pointed at a scratch directory.
  const override = join(work, 'override.yml');
  writeFileSync(
    override,
    `services:\n  redis:\n    image: ${redisTag}\n  postgres:\n    image: ${pgTag}\n  producer:\n    volumes: ['${data}:/data:ro']\n`,
  );
  composeArgs = [
    '--ansi',
    'never',
    '--env-file',
    envFile,
    '-p',
    PROJECT,
    '-f',
    join(ROOT, 'docker-compose.yml'),
    '-f',
    override,
    '--profile',
    'demo',
  ];
  composeEnv = { ...process.env, DOCKER_HOST: `unix://${sock}`, COMPOSE_HTTP_TIMEOUT: '300' };

  healthLoop = runHealthchecks();
  const t = Date.now();
  const up = await compose(['up', '-d', '--no-build', '--scale', 'worker=2'], {
    timeoutMs: 600_000,
  });
  const upMs = Date.now() - t;
  if (
    !check(
      `docker-compose --profile demo up -d --scale worker=2 (${secs(upMs)})`,
      up.code === 0,
      `exit ${up.code}: ${`${up.out}${up.err}`.trim().split('\n').slice(-10).join(' | ')}`,
    )
  ) {
    return false;
  }

  // Every long-running service healthy, by its own healthcheck.
  const want = ['redis', 'postgres', 'sim', 'board', 'worker', 'worker'];
  let status = '';
  let ok = false;
  const deadline = Date.now() + 180_000;
  while (!ok && Date.now() < deadline) {
    const running = (await containers()).filter(
      (c) => c.state === 'running' && want.includes(c.service),
    );
    const states = await Promise.all(
      running.map(async (c) => {
        const r = await exec('podman', ['healthcheck', 'run', c.id], { timeoutMs: 30_000 });
        return `${c.service}:${r.code === 0 ? 'healthy' : (r.out.trim() || r.err.trim()).slice(0, 60)}`;
      }),
    );
    status = states.sort().join(' ');
    ok = running.length === want.length && states.every((s) => s.endsWith(':healthy'));
    if (!ok) await sleep(2000);
  }
  check(`every service healthy: ${status}`, ok, status);
  say(`stack: up in ${secs(upMs)}, every service healthy after ${secs(Date.now() - t)}`);
  return true;
}

async function stackChecks() {
  const all = await containers();
  const one = (svc) => all.find((c) => c.service === svc);
  const migrate = one('migrate');
  check(
    'migrate exited 0',
    migrate &&
      (await inspect(migrate.id, '{{.State.ExitCode}}')) === '0' &&
      (await inspect(migrate.id, '{{.State.Status}}')) === 'exited',
  );

  // The demo batch: 200 names from the bundled sample, to completion.
  const demo = one('demo');
  let demoState = '';
  const deadline = Date.now() + 300_000;
  while (demo && Date.now() < deadline) {
    demoState = await inspect(demo.id, '{{.State.Status}}');
    if (demoState === 'exited') break;
    await sleep(2000);
  }
  const demoLogs = demo ? await exec('podman', ['logs', demo.id]) : { out: '', err: '' };
  const demoOut = `${demoLogs.out}${demoLogs.err}`;
  const demoLine = demoOut.split('\n').find((l) => /^batch .*: completed/.test(l)) ?? '';
  check(
    `the demo batch completed 200/200 (${demoLine.replace(/^batch \S+ /, '')})`,
    demo &&
      demoState === 'exited' &&
      (await inspect(demo.id, '{{.State.ExitCode}}')) === '0' &&
      /200 accepted/.test(demoOut) &&
      /completed, 200\/200 done/.test(demoLine),
    demo
      ? `state ${demoState}; ${demoOut.trim().split('\n').slice(-3).join(' | ')}`
      : 'no demo container',
  );

  // The README's producer commands, in order.
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('## Docker compose'));
  const runs = section
    .split('\n')
    .filter((l) => l.startsWith('docker compose run '))
    .map((l) =>
      l
        .replace(/\s+#.*$/, '')
        .replace(/\s*>\s*\S+$/, '')
        .split(/\s+/)
        .slice(3),
    );
  const sample = readFileSync(join(ROOT, 'packages/devtools/samples/demo-200.txt'), 'utf8')
    .trim()
    .split('\n');
  // Plain usernames (the sample also has profile URLs, which the results list normalised).
  const plain = sample.filter((l) => /^[a-z0-9._]+$/i.test(l));
  const names = [...plain.slice(50, 80), 'nobody.here_42'];
  writeFileSync(join(work, 'data', 'users.txt'), `${names.join('\n')}\n`, { mode: 0o644 });
  let batchId;
  let csv = '';
  let statusOut = '';
  let okRuns = runs.length >= 3;
  for (const words of runs) {
    const args = words.filter((w) => w !== '-T').map((w) => (w === '<batchId>' ? batchId : w));
    const r = await compose(['run', '-T', ...args], { timeoutMs: 300_000 });
    if (r.code !== 0) {
      okRuns = false;
      say(
        `docker compose run ${args.join(' ')}: exit ${r.code}: ${`${r.out}${r.err}`.trim().split('\n').slice(-3).join(' | ')}`,
      );
      break;
    }
    if (args.includes('enqueue')) batchId = /batch ([0-9a-f-]{36})/.exec(r.out)?.[1];
    if (args.includes('status')) statusOut = r.out;
    if (args.includes('results')) csv = r.out;
  }
  const rows = csv
    .trim()
    .split('\n')
    .map((l) => l.split(','));
  const header = rows.shift() ?? [];
  const col = (r, n) => r[header.indexOf(n)];
  const final = new Set(['active', 'none', 'private', 'not_found', 'failed']);
  check(
    `producer enqueue --wait / status / results round trip (${names.length} names)`,
    okRuns &&
      batchId !== undefined &&
      new RegExp(`completed, ${names.length}/${names.length} done`).test(statusOut) &&
      rows.map((r) => col(r, 'username')).join() === names.join() &&
      rows.every((r) => final.has(col(r, 'status'))) &&
      col(rows.find((r) => col(r, 'username') === 'nobody.here_42') ?? [], 'status') ===
        'not_found',
    `batch ${batchId}; status: ${statusOut.trim()}; ${rows.length} result rows`,
  );

  // Drain: SIGTERM through tini; each worker finishes or puts back its jobs and exits 0.
  await compose(
    [
      'run',
      '-T',
      'producer',
      'enqueue',
      'packages/devtools/samples/demo-200.txt',
      '--name',
      'drain',
    ],
    { timeoutMs: 120_000 },
  );
  const workers = (await containers()).filter((c) => c.service === 'worker');
  const t = Date.now();
  const stop = await compose(['stop', 'worker'], { timeoutMs: 120_000 });
  const codes = [];
  for (const w of workers)
    codes.push(
      `${await inspect(w.id, '{{.State.Status}}')}/${await inspect(w.id, '{{.State.ExitCode}}')}`,
    );
  check(
    `docker-compose stop worker drains ${workers.length} workers with exit 0 (${secs(Date.now() - t)})`,
    stop.code === 0 && workers.length === 2 && codes.every((c) => c === 'exited/0'),
    `stop exit ${stop.code}; workers ${codes.join(' ')}`,
  );

  // No secret in any output: every container's log and every healthcheck's output.
  const logs = await compose(['logs', '--no-color'], { timeoutMs: 120_000 });
  let text = `${logs.out}${logs.err}${readFileSync(logFile, 'utf8')}`;
  for (const c of await containers()) text += await inspect(c.id, '{{json .State.Health}}');
  const leaked = secrets.filter((s) => text.includes(s)).length;
  check(
    `no password in container logs, healthcheck output or compose output (${(text.length / 1e3).toFixed(0)} kB read)`,
    leaked === 0,
    `${leaked} of 3 passwords found`,
  );
}

// ---- 6. teardown -------------------------------------------------------------------------------

let tornDown = false;
async function teardown() {
  if (tornDown) return;
  tornDown = true;
  stopHealthLoop = true;
  if (composeArgs) {
    const r = await compose(['down', '-v', '--remove-orphans', '-t', '10'], { timeoutMs: 180_000 });
    if (r.code !== 0) {
      say(`docker-compose down failed (exit ${r.code}); removing by label`);
      const ids = (await containers()).map((c) => c.id);
      if (ids.length) await exec('podman', ['rm', '-f', '-v', ...ids], { timeoutMs: 120_000 });
    }
    const vols = await exec('podman', [
      'volume',
      'ls',
      '-q',
      '--filter',
      `label=com.docker.compose.project=${PROJECT}`,
    ]);
    for (const v of vols.out.trim().split('\n').filter(Boolean))
      await exec('podman', ['volume', 'rm', '-f', v]);
    await exec('podman', ['network', 'rm', '-f', `${PROJECT}_default`]);
  }
  await Promise.race([healthLoop, sleep(35_000)]);
  if (service && service.exitCode === null) {
    service.kill('SIGTERM');
    await Promise.race([new Promise((r) => service.once('exit', r)), sleep(10_000)]);
    if (service.exitCode === null) service.kill('SIGKILL');
  }
  // The passwords: nothing of this run needs them any more.
  rmSync(join(work, 'compose.env'), { force: true });
}

function finish(code) {
  say(`log: ${logFile}`);
  say(`total ${secs(Date.now() - t0)}`);
  process.stdout.write(`${passed} passed, ${failed} failed\n`);
  process.exit(code);
}

async function main() {
  if (process.getuid?.() !== 0) {
    say('skipped: podman needs root here (run as root)');
    return SKIP;
  }
  if (!(await have('apt-get'))) {
    say('skipped: no apt-get to install podman with');
    return SKIP;
  }
  if (!(await install())) {
    say(`skipped: could not install podman and friends from Debian (see ${logFile})`);
    return SKIP;
  }
  mkdirSync(CACHE, { recursive: true });
  writeFileSync(join(CACHE, 'containers.conf'), CONTAINERS_CONF);
  process.env.CONTAINERS_CONF = join(CACHE, 'containers.conf');
  const bases = await baseImages();
  if (!(await buildApp(bases.nodeTag))) return 1;
  if (await startStack(bases)) await stackChecks();
  return failed === 0 ? 0 : 1;
}

let exiting = false;
async function bail(line) {
  if (exiting) return;
  exiting = true;
  say(line);
  failed++;
  for (const c of children) {
    try {
      process.kill(-c.pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
  await teardown();
  finish(1);
}

for (const sig of ['SIGINT', 'SIGTERM'])
  process.on(sig, () => bail(`FAIL interrupted by ${sig}; torn down`));
const overall = setTimeout(
  () => bail(`FAIL deadline of ${DEADLINE_S} s reached; torn down`),
  DEADLINE_S * 1000,
);
overall.unref();

main().then(
  async (code) => {
    if (exiting) return;
    exiting = true;
    clearTimeout(overall);
    await teardown();
    if (code === SKIP) {
      process.stdout.write('0 passed, 0 failed\n');
      process.exit(SKIP);
    }
    finish(code);
  },
  async (e) => {
    if (exiting) return;
    exiting = true;
    clearTimeout(overall);
    failed++;
    say(`FAIL ${e.message}`);
    await teardown();
    finish(1);
  },
);
