
import path from 'node:path';
import { expect, it } from 'vitest';
import { startCniBed } from '../helpers/cni.js';
import { PODMAN_IMAGE, usePodman } from '../helpers/podman.js';
import { DATAPATHS, describePriv } from '../helpers/privileged.js';
import type { DaemonHandle } from '../helpers/topology.js';
import { FIXTURES, probe, startEchoServer } from '../helpers/traffic.js';

/**
 * Real podman (Debian's 4.3, CNI backend) running its containers on a
 * bridgeport network through bridgeport-cni: one podman and one bridgeport
 * daemon per datapath, in the test's host namespace (podman in a mount
 * namespace of its own, test/helpers/podman.ts), the conflist written by
 * `bridgeport cni conflist`, the plugin installed as `bridgeport` in a plugin
 * folder of the test's.
 */
const NET = 'pods';
const SUBNET = '10.89.3.0/24';

describePriv.each(DATAPATHS)('podman through bridgeport-cni (%s)', (datapath) => {
  let d: DaemonHandle | undefined;
  const s = usePodman({
    what: `podman (${datapath})`,
    setup: async (topo) => {
      const { d: daemon, confDir, pluginDir } = await startCniBed(topo, datapath, NET, SUBNET);
      d = daemon;
      return { cniConfigDir: confDir, cniPluginDirs: [pluginDir] };
    },
  });
  const daemon = (): DaemonHandle => {
    if (!d) throw new Error('no bridgeport daemon (setup failed?)');
    return d;
  };
  const records = async (): Promise<any[]> => (await daemon().cliJson(['ps', '--json'])) as any[];
  const fetch = async (host: string, port: number, p = '/cgi-bin/ip'): Promise<string> => {
    const r = await s.topo.inClient('wget', ['-qO-', '-T', '5', `http://${host}:${port}${p}`]);
    if (r.exitCode !== 0) throw new Error(`wget http://${host}:${port}${p}: exit ${r.exitCode}: ${r.stderr}\n--- daemon log ---\n${daemon().logs().slice(-3000)}`);
    return r.stdout.trim();
  };
  const httpd = ['httpd', '-f', '-p', '80', '-h', '/www'];
  const fixtureDir = path.dirname(FIXTURES.echoServer);
  const echo = (specs: string[]) => ['-v', '/usr:/usr:ro', '-v', `${fixtureDir}:${fixtureDir}:ro`, PODMAN_IMAGE, process.execPath, FIXTURES.echoServer, ...specs];
  async function listening(name: string): Promise<void> {
    await expect.poll(async () => (await s.pm.podman(['logs', name])).stdout, { timeout: 10_000 }).toMatch(/listening/);
  }

  it('run -p: the client reaches the container by its real address; podman port and inspect agree with bridgeport', async (ctx) => {
    const { topo, pm } = s.env(ctx);
    await pm.ok(['run', '-d', '--name', 'web', '--network', NET, '-p', '8080:80', PODMAN_IMAGE, ...httpd]);
    expect(await fetch(topo.hostIp, 8080)).toBe(topo.clientIp);
    expect(await pm.ok(['port', 'web'])).toMatch(/80\/tcp -> 0\.0\.0\.0:8080/);
    const info = JSON.parse(await pm.ok(['inspect', 'web']))[0];
    const net = info.NetworkSettings.Networks[NET];
    expect(net.IPAddress).toMatch(/^10\.89\.3\./);
    const [rec] = (await records()).filter((c) => c.Names === 'web');
    expect(rec, JSON.stringify(await records())).toBeDefined();
    expect(rec.Ports).toMatch(/0\.0\.0\.0:8080->80\/tcp/);
    const bp = ((await daemon().cliJson(['inspect', 'web'])) as any[])[0];
    expect(bp.Owner.FrontEnd).toBe('cni');
    expect(bp.Owner.ContainerID).toBe(info.Id);
    expect(bp.NetworkSettings.Networks[NET].IPAddress).toBe(net.IPAddress);
    expect(bp.NetworkSettings.Networks[NET].MacAddress).toBe(net.MacAddress);
    await pm.ok(['rm', '-f', 'web']);
    expect(await records()).toEqual([]);
  });

  it('--ip, -P, a loopback UDP port, container to container, egress masquerade', async (ctx) => {
    const { topo, pm } = s.env(ctx);
    await pm.ok(['run', '-d', '--name', 'fixed', '--network', NET, '--ip', '10.89.3.77', '--expose', '80', '-P', '-p', '127.0.0.1:5353:53/udp', ...echo(['tcp:80', 'udp:53'])]);
    await listening('fixed');
    const info = JSON.parse(await pm.ok(['inspect', 'fixed']))[0];
    expect(info.NetworkSettings.Networks[NET].IPAddress).toBe('10.89.3.77');
    // -P: podman chose the host port; bridgeport publishes what podman chose.
    const published = /80\/tcp -> 0\.0\.0\.0:(\d+)/.exec(await pm.ok(['port', 'fixed']));
    expect(published).not.toBeNull();
    const r = await probe(topo.inClient, 'tcp', topo.hostIp, Number(published![1]));
    expect(r.ok, r.error).toBe(true);
    expect(r.peer?.split(':')[0]).toBe(topo.clientIp);
    expect(r.local).toBe('10.89.3.77:80');
    // The loopback UDP port: from the host itself, not from the client.
    const u = await probe(topo.inHost, 'udp', '127.0.0.1', 5353);
    expect(u.ok, u.error).toBe(true);
    expect((await probe(topo.inClient, 'udp', topo.hostIp, 5353, { timeoutMs: 500 })).ok).toBe(false);

    // Another container reaches it by address on the network; outside, the client sees the host's address.
    await pm.ok(['run', '-d', '--name', 'peer', '--network', NET, PODMAN_IMAGE, 'sleep', '600']);
    const inner = await pm.podman(['exec', 'peer', 'sh', '-c', 'echo | nc -w 3 10.89.3.77 80']);
    expect(inner.stdout).toMatch(/peer=10\.89\.3\.\d+:\d+ local=10\.89\.3\.77:80/);
    const outside = await startEchoServer(topo.clientNsPath, ['tcp:9000']);
    try {
      const out = await pm.podman(['exec', 'peer', 'sh', '-c', `echo | nc -w 3 ${topo.clientIp} 9000`]);
      expect(out.stdout).toMatch(new RegExp(`peer=${topo.hostIp.replace(/\./g, '\\.')}:\\d+`));
    } finally {
      await outside.stop();
    }
    await pm.ok(['rm', '-f', 'fixed', 'peer']);
    expect(await records()).toEqual([]);
  });

  it('stop and start (DEL, then ADD in a new netns), restart, rm -f: every step as podman expects, nothing left', async (ctx) => {
    const { topo, pm } = s.env(ctx);
    await pm.ok(['run', '-d', '--name', 'cycle', '--network', NET, '-p', '8081:80', PODMAN_IMAGE, ...httpd]);
    expect(await fetch(topo.hostIp, 8081)).toBe(topo.clientIp);
    const firstRecord = (await records())[0].ID;
    await pm.ok(['stop', 'cycle']);
    expect(await records()).toEqual([]);
    expect((await topo.inClient('wget', ['-qO-', '-T', '2', `http://${topo.hostIp}:8081/`])).exitCode).not.toBe(0);
    await pm.ok(['start', 'cycle']);
    expect(await fetch(topo.hostIp, 8081)).toBe(topo.clientIp);
    const again = await records();
    expect(again.length).toBe(1);
    expect(again[0].ID).not.toBe(firstRecord);
    await pm.ok(['restart', 'cycle']);
    expect(await fetch(topo.hostIp, 8081)).toBe(topo.clientIp);
    // A host port podman holds for one container is refused for another (podman binds it itself, first).
    const clash = await pm.podman(['run', '-d', '--name', 'clash', '--network', NET, '-p', '8081:80', PODMAN_IMAGE, ...httpd]);
    expect(clash.exitCode).not.toBe(0);
    await pm.podman(['rm', '-f', 'clash']);
    await pm.ok(['rm', '-f', 'cycle']);
    expect(await records()).toEqual([]);
    const links = (await topo.inHost('ip', ['-o', 'link', 'show', 'type', 'veth'])).stdout.trim().split('\n');
    expect(links.map((l) => l.split(':')[1]!.trim().split('@')[0])).toEqual([topo.uplink]);
  });
});
