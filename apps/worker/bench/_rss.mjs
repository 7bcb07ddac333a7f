import { readFile } from 'node:fs/promises';
import { startSim } from '@storycheck/upstream-sim';
import { scenario } from './lib.mjs';
const N = 2000;
const sim = await startSim({ seed: 11, size: N + 30, latencyMs: 0 });
const names = sim.world.usernames();
const s = await scenario(`scbenchrss_${process.pid}`, {
  IG_BASE_URL: sim.url,
  WORKER_CONCURRENCY: '50',
});
const st = async (pid) => {
  const t = await readFile(`/proc/${pid}/status`, 'utf8');
  const g = (k) => Number(new RegExp(k + ':\\s+(\\d+)').exec(t)[1]) / 1024;
  const f = (await readFile(`/proc/${pid}/stat`, 'utf8')).split(') ')[1].split(' ');
  const cpu = (Number(f[11]) + Number(f[12])) / 100;
  return `cpu ${cpu.toFixed(2)}s RSS ${g('VmRSS').toFixed(0)} HWM ${g('VmHWM').toFixed(0)} anon ${g('RssAnon').toFixed(0)} file ${g('RssFile').toFixed(0)}`;
};
try {
  s.startWorkers(1, JSON.parse(process.env.WENV ?? '{}'));
  await s.checks(names.slice(0, 20));
  const pid = s.pids()[0];
  console.log('idle after 20:', await st(pid));
  await s.checks(names.slice(20, 20 + N));
  console.log('after 2000:', await st(pid));
} finally {
  await s.close();
  await sim.close();
}
