import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import { expect, it } from 'vitest';
import { describePriv } from '../helpers/privileged.js';
import { createTopology, netnsId, pidsInNetns, REPO_ROOT, runCommand, type Topology, useTopology } from '../helpers/topology.js';
import { probe, probeMany, startEchoServer } from '../helpers/traffic.js';

async function netnsNames(): Promise<string[]> {
  const r = await runCommand(['ip', 'netns', 'list']);
  expect(r.exitCode).toBe(0);
  return r.stdout
    .split('\n')
    .map((l) => l.split(' ')[0] ?? '')
    .filter(Boolean);
}

describePriv('test topology', () => {
  const topo = useTopology();

  it('lets the client reach a TCP echo server in the host namespace', async () => {
    const t = topo();
    await startEchoServer(t.hostNsPath, ['tcp:8080']);
    const r = await probe(t.inClient.bind(t), 'tcp', t.hostIp, 8080);
    expect(r).toMatchObject({ ok: true, local: `${t.hostIp}:8080` });
    expect(r.peer).toMatch(/^198\.18\.0\.2:\d+$/);
  });

  it('lets the client reach a UDP echo server and keeps the source port', async () => {
    const t = topo();
    await startEchoServer(t.hostNsPath, ['udp:5353']);
    const r = await probe(t.inClient.bind(t), 'udp', t.hostIp, 5353, { sourcePort: 40001 });
    expect(r).toMatchObject({ ok: true, peer: `${t.clientIp}:40001`, local: `${t.hostIp}:5353` });
  });

  it('serves port ranges and answers from the host towards the client', async () => {
    const t = topo();
    await startEchoServer(t.clientNsPath, ['tcp:7000-7002', 'udp:7000-7002']);
    for (const port of [7000, 7001, 7002]) {
      const tcp = await probe((c, a) => t.inHost(c, a), 'tcp', t.clientIp, port);
      expect(tcp).toMatchObject({ ok: true, peer: expect.stringMatching(/^198\.18\.0\.1:/) });
      const udp = await probe((c, a) => t.inHost(c, a), 'udp', t.clientIp, port);
      expect(udp).toMatchObject({ ok: true, local: `${t.clientIp}:${port}` });
    }
  });

  it('reports closed ports as refused and silent ones as timeout', async () => {
    const t = topo();
    const run = t.inClient.bind(t);
    expect(await probe(run, 'tcp', t.hostIp, 9)).toEqual({ ok: false, error: 'refused' });
    expect(await probe(run, 'udp', t.hostIp, 9)).toEqual({ ok: false, error: 'refused' });
    // 198.18.0.0/24 is on-link but .77 does not exist: ARP fails, nothing answers.
    const silent = await probe(run, 'tcp', '198.18.0.77', 80, { timeoutMs: 300 });
    expect(silent.ok).toBe(false);
    expect(['timeout', 'unreachable']).toContain(silent.error);
  });

  it('runs several probes in one process', async () => {
    const t = topo();
    await startEchoServer(t.hostNsPath, ['tcp:8081']);
    const results = await probeMany(t.inClient.bind(t), 'tcp', t.hostIp, 8081, 3);
    expect(results).toHaveLength(3);
    expect(results.every((r) => r.ok)).toBe(true);
  });

  it('keeps the host namespace routed to the client and away from the root namespace', async () => {
    const t = topo();
    const route = await t.inHost('ip', ['route', 'show', 'default']);
    expect(route.stdout).toContain('via 198.18.0.2 dev uplink0');
    const links = await runCommand(['ip', '-o', 'link', 'show', 'dev', 'uplink0']);
    expect(links.exitCode).not.toBe(0);
    const exit = await t.inClient('sh', ['-c', 'exit 3']);
    expect(exit.exitCode).toBe(3);
  });

  it('reports a daemon that cannot start, with its logs', async () => {
    const t = topo();
    await expect(t.startDaemon({ datapath: 'no-such-datapath' })).rejects.toThrow(/daemon logs/);
  });
});

describePriv('topology cleanup', () => {
  it('removes namespaces, sandboxes, processes and the work dir, and is idempotent', async () => {
    const t: Topology = await createTopology();
    try {
      // A fake daemon sandbox: a bind-mounted netns file under run/netns with a process in it.
      const sandboxDir = path.join(t.workDir, 'run', 'netns');
      const sandbox = path.join(sandboxDir, 'sbx-1');
      await mkdir(sandboxDir, { recursive: true });
      await writeFile(sandbox, '');
      const mount = await runCommand(['unshare', `--net=${sandbox}`, '--', 'true']);
      expect(mount.exitCode, mount.stderr).toBe(0);
      const sandboxSleeper = execa('nsenter', [`--net=${sandbox}`, '--', 'sleep', '600'], { reject: false });
      const hostSleeper = execa('nsenter', [`--net=${t.hostNsPath}`, '--', 'sleep', '600'], { reject: false });
      await startEchoServer(t.clientNsPath, ['tcp:80', 'udp:53']);

      const ids = (await Promise.all([t.hostNsPath, t.clientNsPath, sandbox].map(netnsId))).filter(
        (id) => id !== undefined,
      );
      expect(ids).toHaveLength(3);
      await expect.poll(async () => (await pidsInNetns(ids)).length).toBe(3);

      await t.cleanup();

      expect(await pidsInNetns(ids)).toEqual([]);
      expect((await sandboxSleeper).signal).toBe('SIGKILL');
      expect((await hostSleeper).signal).toBe('SIGKILL');
      const names = await netnsNames();
      expect(names).not.toContain(t.hostNs);
      expect(names).not.toContain(t.clientNs);
      expect(existsSync(t.workDir)).toBe(false);
      expect(existsSync(t.hostNsPath)).toBe(false);

      await expect(t.cleanup()).resolves.toBeUndefined();
    } finally {
      await t.cleanup();
    }
  });

  it('finishes the job when something was already removed by hand', async () => {
    const t = await createTopology();
    try {
      expect((await runCommand(['ip', 'netns', 'del', t.clientNs])).exitCode).toBe(0);
      await Promise.all([t.cleanup(), t.cleanup()]);
      expect(await netnsNames()).not.toContain(t.hostNs);
      expect(existsSync(t.workDir)).toBe(false);
    } finally {
      await t.cleanup();
    }
  });
});

describePriv('host listeners (the check before a port is published)', () => {
  const topo = useTopology();

  it('sock_diag finds what /proc/net lists: TCP listeners and bound UDP sockets, v4 and v4-in-v6', async () => {
    const t = topo();
    const servers = [
      await startEchoServer(t.hostNsPath, ['tcp:7701', 'udp:7702']),
      await startEchoServer(t.hostNsPath, ['tcp:7703'], { bind: '127.0.0.1' }),
    ];
    try {
      // A v6 wildcard listener also serves IPv4: it must count as 0.0.0.0.
      const v6 = `const s=require('net').createServer();s.listen({port:7704,host:'::'},()=>console.log('up'));setTimeout(()=>{},60000)`;
      const argv = [`--net=${t.hostNsPath}`, process.execPath, '-e', v6];
      const dual = execa('nsenter', argv, { reject: false, buffer: false, stdin: 'ignore' });
      try {
        await new Promise<void>((resolve, reject) => {
          dual.stdout?.once('data', () => resolve());
          dual.once('exit', () => reject(new Error('v6 listener exited')));
        });
        const script = `import(${JSON.stringify(path.join(REPO_ROOT, 'dist', 'host', 'sockets.js'))}).then(async (m) => console.log(JSON.stringify({ diag: m.diagListeners(), proc: await m.procListeners() })))`;
        const r = await t.inHost(process.execPath, ['-e', script]);
        expect(r.exitCode, r.stderr).toBe(0);
        const { diag, proc } = JSON.parse(r.stdout) as Record<string, { proto: string; hostIp: string; hostPort: number }[]>;
        const key = (b: { proto: string; hostIp: string; hostPort: number }) => `${b.proto} ${b.hostIp}:${b.hostPort}`;
        expect(diag!.map(key).sort()).toEqual(proc!.map(key).sort());
        expect(diag!.map(key)).toEqual(expect.arrayContaining(['tcp 0.0.0.0:7701', 'udp 0.0.0.0:7702', 'tcp 127.0.0.1:7703', 'tcp 0.0.0.0:7704']));
      } finally {
        dual.kill('SIGKILL');
        await dual.catch(() => undefined);
      }
    } finally {
      for (const s of servers) await s.stop();
    }
  });
});
