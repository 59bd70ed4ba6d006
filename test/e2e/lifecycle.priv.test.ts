import { existsSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { DATAPATHS, describePriv } from '../helpers/privileged.js';
import { bridgeportRules, clearPinnedMap, fails, inContainer, inspect, installed, ipOf, ok, probe, runEcho, useDaemon } from '../helpers/scenario.js';
import { REPO_ROOT, type Topology, useTopology } from '../helpers/topology.js';
import { startEchoServer } from '../helpers/traffic.js';

describePriv.each(DATAPATHS)('containers and networks over their lifetime (%s)', (datapath) => {
  const env = useDaemon(datapath);

  it('--net host, --net none and --net container:NAME behave as in Docker', async () => {
    const { topo, d } = env();
    await runEcho(d, 'hosted', { network: 'host', specs: ['tcp:7100'] });
    expect((await inspect(d, 'hosted')).HostConfig.NetworkMode).toBe('host');
    expect((await probe(topo.inClient, 'tcp', topo.hostIp, 7100)).ok).toBe(true);

    await ok(d, ['run', '-d', '--name', 'alone', '--net', 'none', '--', 'sleep', '300']);
    const links = (await ok(d, ['exec', 'alone', '--', 'ip', '-o', 'link', 'show'])).trim().split('\n');
    expect(links.map((l) => l.split(':')[1]?.trim())).toEqual(['lo']);

    const web = await runEcho(d, 'web');
    await ok(d, ['run', '-d', '--name', 'sidecar', '--net', 'container:web', '--', 'sleep', '300']);
    const sidecar = await inspect(d, 'sidecar');
    expect(sidecar.NetworkSettings.SandboxKey).toBe(web.NetworkSettings.SandboxKey);
    expect(sidecar.HostConfig.NetworkMode).toBe(`container:${web.Id}`);
    // The sidecar shares web's network stack: web's server answers on its loopback.
    expect((await probe(inContainer(d, 'sidecar'), 'tcp', '127.0.0.1', 80)).ok).toBe(true);
    expect(await fails(d, ['rm', '-f', 'web'])).toMatch(/sidecar/);
  });

  it('network options and the endpoint inside the sandbox: MTU, bridge name, MAC, route, hostname', async () => {
    const { topo, d } = env();
    await ok(d, [
      'network', 'create', 'opts', '--subnet', '172.30.7.0/24', '--mtu', '1400',
      '-o', 'com.docker.network.bridge.name=bp-opts0', '-o', 'com.docker.network.bridge.enable_icc=false',
    ]);
    const net = ((await d.cliJson(['network', 'inspect', 'opts'])) as any[])[0];
    expect(net.Options['com.docker.network.bridge.name']).toBe('bp-opts0');
    expect(net.Options['com.docker.network.bridge.enable_icc']).toBe('false');
    expect(net.IPAM.Config).toEqual([{ Subnet: '172.30.7.0/24', Gateway: '172.30.7.1' }]);
    const bridge = JSON.parse((await topo.inHost('ip', ['-json', 'addr', 'show', 'dev', 'bp-opts0'])).stdout)[0];
    expect(bridge.mtu).toBe(1400);
    expect(bridge.addr_info.map((a: any) => `${a.local}/${a.prefixlen}`)).toContain('172.30.7.1/24');

    await ok(d, ['run', '-d', '--name', 'h', '--network', 'opts', '--hostname', 'myhost', '--', 'sleep', '300']);
    const info = await inspect(d, 'h');
    const ep = info.NetworkSettings.Networks.opts;
    expect(ep.IPAddress).toBe('172.30.7.2');
    expect(ep.MacAddress).toBe('02:42:ac:1e:07:02');
    const eth0 = JSON.parse(await ok(d, ['exec', 'h', '--', 'ip', '-json', 'link', 'show', 'dev', 'eth0']))[0];
    expect(eth0.mtu).toBe(1400);
    expect(eth0.address).toBe('02:42:ac:1e:07:02');
    const addrs = JSON.parse(await ok(d, ['exec', 'h', '--', 'ip', '-json', '-4', 'addr', 'show', 'dev', 'eth0']))[0];
    expect(addrs.addr_info.map((a: any) => `${a.local}/${a.prefixlen}`)).toEqual(['172.30.7.2/24']);
    expect((await ok(d, ['exec', 'h', '--', 'ip', 'route', 'show', 'default'])).trim()).toMatch(/^default via 172\.30\.7\.1 dev eth0/);
    expect((await ok(d, ['exec', 'h', '--', 'cat', '/proc/sys/kernel/hostname'])).trim()).toBe('myhost');
    const hostSide = JSON.parse((await topo.inHost('ip', ['-json', '-details', 'link', 'show', 'dev', ep.HostInterfaceName])).stdout)[0];
    expect(hostSide.master).toBe('bp-opts0');
    expect(hostSide.linkinfo.info_slave_data.hairpin).toBe(true);
  });

  it('connect and disconnect a second network', async () => {
    const { d } = env();
    await ok(d, ['network', 'create', 'back']);
    const c = await runEcho(d, 'c');
    const peer = await runEcho(d, 'peer', { network: 'back' });
    await ok(d, ['connect', 'back', 'c']);
    const info = await inspect(d, 'c');
    expect(Object.keys(info.NetworkSettings.Networks).sort()).toEqual(['back', 'bridge']);
    expect(info.NetworkSettings.Networks.back.InterfaceName).toBe('eth1');
    expect(info.NetworkSettings.Networks.bridge.IPAddress).toBe(ipOf(c, 'bridge'));
    expect((await probe(inContainer(d, 'c'), 'tcp', ipOf(peer, 'back'), 80)).ok).toBe(true);
    expect((await probe(inContainer(d, 'peer'), 'tcp', ipOf(info, 'back'), 80)).ok).toBe(true);

    await ok(d, ['disconnect', 'back', 'c']);
    expect(Object.keys((await inspect(d, 'c')).NetworkSettings.Networks)).toEqual(['bridge']);
    expect((await d.cli(['exec', 'c', '--', 'ip', 'link', 'show', 'eth1'])).exitCode).not.toBe(0);
    expect((await probe(inContainer(d, 'c'), 'tcp', ipOf(peer, 'back'), 80)).ok).toBe(false);
  });

  it("connect --netns attaches another runtime's sandbox", async () => {
    const { topo, d } = env();
    const nsName = `${topo.hostNs}-x`;
    const nsPath = `/var/run/netns/${nsName}`;
    await topo.inHost('ip', ['netns', 'add', nsName]);
    try {
      await ok(d, ['network', 'create', 'shared', '--subnet', '172.31.5.0/24']);
      await ok(d, ['connect', 'shared', 'foreign', '--netns', nsPath, '--ip', '172.31.5.50']);
      const server = await startEchoServer(nsPath, ['tcp:80']);
      try {
        await runEcho(d, 'local', { network: 'shared' });
        const r = await probe(inContainer(d, 'local'), 'tcp', '172.31.5.50', 80);
        expect(r.ok, JSON.stringify(r)).toBe(true);
        expect((await inspect(d, 'foreign')).NetworkSettings.SandboxKey).toBe(nsPath);
      } finally {
        await server.stop();
      }
      await ok(d, ['disconnect', 'shared', 'foreign']);
      expect(await ok(d, ['ps', '-q'])).not.toContain('foreign');
      expect((await d.cli(['inspect', 'foreign'])).exitCode).not.toBe(0);
    } finally {
      await topo.inHost('ip', ['netns', 'del', nsName]);
    }
  });

  it('rm and network rm remove every rule, link and namespace they made', async () => {
    const { topo, d } = env();
    const empty = await installed(topo, d);
    const linksBefore = (await topo.inHost('ip', ['-o', 'link', 'show'])).stdout.split('\n').length;
    await ok(d, ['network', 'create', 'tmp']);
    const web = await runEcho(d, 'web', { network: 'tmp', flags: ['-p', '8092:80', '-p', '5356:53/udp'] });
    expect((await installed(topo, d)).join('\n')).toContain(ipOf(web, 'tmp'));
    await ok(d, ['rm', '-f', 'web']);
    await ok(d, ['network', 'rm', 'tmp']);
    expect(await installed(topo, d)).toEqual(empty);
    expect((await topo.inHost('ip', ['-o', 'link', 'show'])).stdout.split('\n').length).toBe(linksBefore);
    expect(await readdir(join(d.runDir, 'netns'))).toEqual([]);
    expect((await probe(topo.inClient, 'tcp', topo.hostIp, 8092)).ok).toBe(false);
  });

  it('a restart (even kill -9) re-syncs rules without duplicates and leaves foreign rules alone', async () => {
    const { topo, d } = env();
    await ok(d, ['network', 'create', 'quiet', '--icc=false']);
    await runEcho(d, 'web', { flags: ['-p', '8093:80'] });
    await runEcho(d, 'db', { network: 'quiet', flags: ['--expose', '80'] });
    await runEcho(d, 'app', { network: 'quiet', flags: ['--link', 'db'] });
    // The operator's own rules: in FORWARD, and (iptables) in BRIDGEPORT-USER or
    // (eBPF) a tc filter of its own on the uplink.
    await topo.inHost('iptables', ['-I', 'FORWARD', '1', '-s', '192.0.2.10/32', '-j', 'DROP']);
    if (datapath === 'iptables') await topo.inHost('iptables', ['-A', 'BRIDGEPORT-USER', '-s', '192.0.2.9/32', '-j', 'DROP']);
    else {
      const foreign = join(REPO_ROOT, 'bpf', 'obj', 'test', 'foreign_pass.o');
      const tc = await topo.inHost('tc', ['filter', 'add', 'dev', topo.uplink, 'ingress', 'prio', '100', 'bpf', 'da', 'obj', foreign, 'sec', 'tc']);
      expect(tc.exitCode, tc.stderr).toBe(0);
    }
    const before = await installed(topo, d);
    expect(before.length).toBeGreaterThan(0);

    await d.kill9();
    await d.restart();
    expect(await installed(topo, d)).toEqual(before);
    const save = (await topo.inHost('iptables-save', [])).stdout;
    expect(save).toContain('-A FORWARD -s 192.0.2.10/32 -j DROP');
    if (datapath === 'iptables') {
      expect(save.match(/-A FORWARD -j BRIDGEPORT-FORWARD/g)).toHaveLength(1);
      expect(save).toContain('-A BRIDGEPORT-USER -s 192.0.2.9/32 -j DROP');
    } else {
      expect(save).not.toContain('BRIDGEPORT');
      const tc = await topo.inHost('tc', ['filter', 'show', 'dev', topo.uplink, 'ingress']);
      expect(tc.stdout).toContain('foreign_pass');
      expect(tc.stdout.match(/ name bp_uplink_ingre/g)).toHaveLength(1);
    }

    // Containers kept running across the restart and traffic still flows.
    expect((await probe(topo.inClient, 'tcp', topo.hostIp, 8093)).ok).toBe(true);
    expect((await inspect(d, 'web')).State.Running).toBe(true);

    // State removed behind the daemon's back comes back on the next start.
    if (datapath === 'iptables') await topo.inHost('iptables', ['-t', 'nat', '-F', 'BRIDGEPORT']);
    else await clearPinnedMap(join(d.runDir, 'bpf', 'maps', 'bp_published'));
    expect((await probe(topo.inClient, 'tcp', topo.hostIp, 8093)).ok).toBe(false);
    await d.stop();
    await d.restart();
    expect(await installed(topo, d)).toEqual(before);
    expect((await probe(topo.inClient, 'tcp', topo.hostIp, 8093)).ok).toBe(true);
  });

  it('daemon --cleanup removes every rule of the datapath, and the CLI says when no daemon runs', async () => {
    const { topo, d } = env();
    await runEcho(d, 'web', { flags: ['-p', '8094:80'] });
    const progIds = datapath === 'ebpf' ? await pinnedProgIds(topo, d.runDir) : [];
    await d.stop();
    const down = await d.cli(['ps']);
    expect(down.exitCode).not.toBe(0);
    expect(down.stderr).toContain('Cannot connect to the bridgeport daemon');
    expect(down.stderr).toContain('bridgeport daemon');

    const r = await topo.inHost('node', [
      join(REPO_ROOT, 'bin', 'bridgeport'),
      'daemon',
      '--cleanup',
      '--datapath',
      datapath,
      '--state-dir',
      d.stateDir,
      '--run-dir',
      d.runDir,
    ]);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(await bridgeportRules(topo)).toEqual([]);
    expect(existsSync(join(d.runDir, 'bpf', 'maps'))).toBe(false);
    const tc = await topo.inHost('tc', ['filter', 'show', 'dev', topo.uplink, 'ingress']);
    expect(tc.stdout).not.toContain('bp_');
    const xdp = await topo.inHost('ip', ['-d', 'link', 'show', 'dev', topo.uplink]);
    expect(xdp.stdout).not.toContain('xdp');
    expect((await probe(topo.inClient, 'tcp', topo.hostIp, 8094)).ok).toBe(false);
    // The masquerade ports the eBPF datapath reserved from the host's sockets are given back.
    expect((await topo.inHost('sysctl', ['-n', 'net.ipv4.ip_local_reserved_ports'])).stdout.trim()).toBe('');
    // Every program (tc, XDP, cgroup hooks) is gone from the kernel.
    expect(await aliveProgs(topo, progIds)).toEqual([]);
  });

  it.runIf(datapath === 'ebpf')('refuses pinned maps of another ABI layout, saying how to clean them', async () => {
    const { topo, d } = env();
    await d.stop();
    const { BpfMap } = await import('../../src/datapath/ebpf/handles.js');
    const meta = BpfMap.fromPin(join(d.runDir, 'bpf', 'maps', 'bp_meta'));
    try {
      const v = meta.lookup(Buffer.alloc(4))!;
      v.writeUInt32LE((v.readUInt32LE(4) ^ 0xffff) >>> 0, 4);
      meta.update(Buffer.alloc(4), v);
    } finally {
      meta.close();
    }
    await expect(d.restart()).rejects.toThrow(/another layout.*daemon --cleanup/s);
    const r = await topo.inHost('node', [join(REPO_ROOT, 'bin', 'bridgeport'), 'daemon', '--cleanup', '--state-dir', d.stateDir, '--run-dir', d.runDir]);
    expect(r.exitCode, r.stderr).toBe(0);
    await d.restart();
    expect(((await d.cliJson(['status', '--json'])) as any).Datapath).toBe('ebpf');
  });
});

async function pinnedProgIds(topo: Topology, runDir: string): Promise<number[]> {
  const ids: number[] = [];
  for (const name of await readdir(join(runDir, 'bpf', 'progs'))) {
    const r = await topo.inHost('bpftool', ['-j', 'prog', 'show', 'pinned', join(runDir, 'bpf', 'progs', name)]);
    ids.push(JSON.parse(r.stdout).id);
  }
  return ids;
}

/** Which of `ids` the kernel still has; programs are freed RCU-deferred, so give it a moment. */
async function aliveProgs(topo: Topology, ids: number[]): Promise<number[]> {
  let alive = ids;
  for (let i = 0; i < 20; i++) {
    const r = await topo.inHost('bpftool', ['-j', 'prog', 'show']);
    const live = new Set((JSON.parse(r.stdout) as { id: number }[]).map((p) => p.id));
    alive = ids.filter((id) => live.has(id));
    if (alive.length === 0) break;
    await new Promise((res) => setTimeout(res, 100));
  }
  return alive;
}

describePriv('datapath selection', () => {
  const topology = useTopology();

  it('auto falls back to iptables when eBPF cannot run, and says why; --datapath ebpf refuses', async () => {
    const topo = topology();
    // Without CAP_BPF/CAP_SYS_ADMIN/CAP_PERFMON the kernel loads no program.
    const dropCaps = ['bpf', 'sys_admin', 'perfmon'];
    const d = await topo.startDaemon({ datapath: 'auto', dropCaps });
    const status = (await d.cliJson(['status', '--json'])) as any;
    expect(status.Datapath).toBe('iptables');
    expect(status.DatapathReason).toMatch(/ebpf unavailable: .+/);
    expect(d.logs()).toMatch(/eBPF unavailable \(.+\); falling back to iptables/);
    expect((await bridgeportRules(topo)).length).toBeGreaterThan(0);
    await d.stop();

    const drop = dropCaps.map((c) => `-${c}`).join(',');
    const r = await topo.inHost('setpriv', [
      `--bounding-set=${drop}`,
      `--inh-caps=${drop}`,
      process.execPath,
      join(REPO_ROOT, 'bin', 'bridgeport'),
      'daemon',
      '--datapath',
      'ebpf',
      '--state-dir',
      `${d.stateDir}-ebpf`,
      '--run-dir',
      `${d.runDir}-ebpf`,
    ]);
    expect(r.exitCode).not.toBe(0);
    expect(r.stderr).toMatch(/--datapath ebpf: .+/);
    expect(existsSync(join(`${d.runDir}-ebpf`, 'bpf', 'maps'))).toBe(false);

    // With every capability, auto chooses eBPF.
    await d.restart({ dropCaps: [] });
    expect(((await d.cliJson(['status', '--json'])) as any).Datapath).toBe('ebpf');
  });

  it('switching a host between datapaths leaves nothing of the old one behind', async () => {
    const topo = topology();
    const d = await topo.startDaemon({ datapath: 'ebpf' });
    await runEcho(d, 'web', { flags: ['-p', '8095:80'] });
    expect((await probe(topo.inClient, 'tcp', topo.hostIp, 8095)).ok).toBe(true);
    const ebpfState = await installed(topo, d);
    expect(ebpfState.some((l) => l.startsWith('bp_published'))).toBe(true);
    const progIds = await pinnedProgIds(topo, d.runDir);
    expect(progIds.length).toBeGreaterThanOrEqual(6);
    await d.stop();

    await d.restart({ datapath: 'iptables' });
    expect(((await d.cliJson(['status', '--json'])) as any).Datapath).toBe('iptables');
    expect(existsSync(join(d.runDir, 'bpf'))).toBe(false);
    const tc = await topo.inHost('tc', ['filter', 'show', 'dev', topo.uplink, 'ingress']);
    expect(tc.stdout).not.toContain('bp_');
    expect((await topo.inHost('ip', ['-d', 'link', 'show', 'dev', topo.uplink])).stdout).not.toContain('xdp');
    // Programs are freed once nothing holds them (no pin, attachment or link).
    expect(await aliveProgs(topo, progIds)).toEqual([]);
    expect((await probe(topo.inClient, 'tcp', topo.hostIp, 8095)).ok).toBe(true);
    expect((await bridgeportRules(topo)).length).toBeGreaterThan(0);
    await d.stop();

    await d.restart({ datapath: 'ebpf' });
    expect(await bridgeportRules(topo)).toEqual([]);
    expect(await installed(topo, d)).toHaveLength(ebpfState.length);
    expect((await probe(topo.inClient, 'tcp', topo.hostIp, 8095)).ok).toBe(true);
  });
});
