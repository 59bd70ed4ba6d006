import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, readlink, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { expect, it } from 'vitest';
import { CNI_PLUGIN, cniCall, containerId, expectAddResult, expectCniError, makeSandbox } from '../helpers/cni.js';
import { DATAPATHS, describePriv } from '../helpers/privileged.js';
import { ok, useDaemon } from '../helpers/scenario.js';
import { REPO_ROOT, runCommand } from '../helpers/topology.js';
import { probe, startEchoServer } from '../helpers/traffic.js';

/**
 * The CNI plugin driven as a runtime drives it: the CNI_* environment and the
 * network configuration on stdin of each verb and spec version, against a
 * real daemon in the test's host namespace, sandboxes as plain network
 * namespaces. Real podman is in cni-podman.priv.test.ts.
 */
describePriv.each(DATAPATHS)('CNI plugin, spec level (%s)', (datapath) => {
  const env = useDaemon(datapath, ['--cni-gc-interval', '1']);

  const conf = (extra: Record<string, unknown> = {}, version = '1.0.0') => ({
    cniVersion: version,
    name: 'pods',
    type: 'bridgeport',
    socket: env().d.socket,
    subnet: '10.88.7.0/24',
    ...extra,
  });
  const call = (inv: Parameters<typeof cniCall>[1]) => cniCall(env().topo.hostNsPath, inv);
  const inSandbox = (ns: string) => (cmd: string, args: string[]) => runCommand(['nsenter', `--net=${ns}`, '--', cmd, ...args]);

  it('VERSION answers without the daemon, in the caller\'s version; bad stdin is a decode error', async () => {
    const out = await cniCall(env().topo.hostNsPath, { command: 'VERSION', netns: 'dummy', config: { cniVersion: '1.0.0' } });
    expect(out.exitCode).toBe(0);
    expect(out.json).toEqual({ cniVersion: '1.0.0', supportedVersions: ['0.4.0', '1.0.0', '1.1.0'] });
    await env().d.stop();
    const down = await call({ command: 'VERSION', config: { cniVersion: '0.4.0' } });
    expect(down.json).toEqual({ cniVersion: '0.4.0', supportedVersions: ['0.4.0', '1.0.0', '1.1.0'] });
    expectCniError(await call({ command: 'VERSION', config: 'not json' }), 6);
    // With the daemon down, ADD says try again later and STATUS says it cannot serve ADD.
    const sb = await makeSandbox(env().topo.workDir, 'down');
    try {
      expectCniError(await call({ command: 'ADD', containerId: containerId(), netns: sb.path, ifname: 'eth0', config: conf() }), 11, /not reachable/);
      expectCniError(await call({ command: 'STATUS', config: conf() }), 50, /not reachable/);
    } finally {
      await sb.remove();
    }
  });

  it('ADD attaches the sandbox with address, MAC, route and published port; DEL removes it, and is idempotent', async () => {
    const { topo, d } = env();
    const sb = await makeSandbox(topo.workDir, 'web');
    try {
      const id = containerId();
      const add = await call({
        command: 'ADD',
        containerId: id,
        netns: sb.path,
        ifname: 'eth0',
        args: 'IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0;K8S_POD_UID=1234',
        config: conf({ runtimeConfig: { portMappings: [{ hostPort: 8080, containerPort: 80, protocol: 'tcp', hostIP: '' }] } }),
      });
      expect(add.exitCode, add.stdout + add.stderr).toBe(0);
      expectAddResult('1.0.0', add.json, 'eth0', sb.path);
      const [ip, prefix] = add.json.ips[0].address.split('/');
      expect(prefix).toBe('24');
      expect(add.json.ips[0].gateway).toBe('10.88.7.1');
      expect(add.json.routes).toEqual([{ dst: '0.0.0.0/0', gw: '10.88.7.1' }]);
      // The sandbox has what the result says.
      const link = JSON.parse((await inSandbox(sb.path)('ip', ['-json', 'addr', 'show', 'dev', 'eth0'])).stdout)[0];
      expect(link.address).toBe(add.json.interfaces[0].mac);
      expect(link.addr_info.some((a: any) => a.local === ip && a.prefixlen === 24)).toBe(true);
      expect((await inSandbox(sb.path)('ip', ['route', 'show', 'default'])).stdout).toMatch(/default via 10\.88\.7\.1 dev eth0/);
      // The network was made from the configuration's keys, and the attachment shows by its pod name.
      const net = ((await d.cliJson(['network', 'inspect', 'pods'])) as any[])[0];
      expect(net.IPAM.Config[0].Subnet).toBe('10.88.7.0/24');
      expect(await ok(d, ['ps'])).toMatch(/web-0/);
      // Traffic: the client reaches the sandbox's server through the published port, and the sandbox reaches the client.
      const server = await startEchoServer(sb.path, ['tcp:80']);
      try {
        const r = await probe(topo.inClient, 'tcp', topo.hostIp, 8080);
        expect(r.ok, r.error).toBe(true);
        expect(r.local).toBe(`${ip}:80`);
      } finally {
        await server.stop();
      }
      const outside = await startEchoServer(topo.clientNsPath, ['tcp:9000']);
      try {
        const r = await probe(inSandbox(sb.path), 'tcp', topo.clientIp, 9000);
        expect(r.ok, r.error).toBe(true);
        // Masqueraded: the outside sees the host's uplink address.
        expect(r.peer?.split(':')[0]).toBe(topo.hostIp);
      } finally {
        await outside.stop();
      }

      // ADD again for the same container and interface: refused, nothing changed.
      const again = await call({ command: 'ADD', containerId: id, netns: sb.path, ifname: 'eth0', config: conf() });
      expectCniError(again, 100, /already exists/);
      // An interface of that name already in the sandbox (another plugin's): refused, nothing left.
      await inSandbox(sb.path)('ip', ['link', 'add', 'eth1', 'type', 'veth', 'peer', 'name', 'eth1p']);
      const taken = await call({ command: 'ADD', containerId: containerId(), netns: sb.path, ifname: 'eth1', config: conf() });
      expectCniError(taken, 100, /exists/);
      expect(((await d.cliJson(['ps', '--json'])) as any[]).length).toBe(1);

      const del = await call({ command: 'DEL', containerId: id, netns: sb.path, ifname: 'eth0', config: conf({ prevResult: add.json }) });
      expect(del.exitCode, del.stdout).toBe(0);
      expect(del.stdout.trim()).toBe('');
      expect((await inSandbox(sb.path)('ip', ['link', 'show', 'eth0'])).exitCode).not.toBe(0);
      expect((await probe(topo.inClient, 'tcp', topo.hostIp, 8080, { timeoutMs: 500 })).ok).toBe(false);
      expect(await ok(d, ['ps'])).not.toMatch(/web-0/);
      // Repeated, with an empty CNI_NETNS, without prevResult, before any ADD: all succeed.
      for (const inv of [
        { command: 'DEL', containerId: id, netns: sb.path, ifname: 'eth0', config: conf() },
        { command: 'DEL', containerId: id, netns: '', ifname: 'eth0', config: conf() },
        { command: 'DEL', containerId: containerId(), ifname: 'eth0', config: conf() },
      ]) {
        const r = await call(inv);
        expect(r.exitCode, r.stdout).toBe(0);
      }
    } finally {
      await sb.remove();
    }
  });

  it('every spec version gets its own result shape; unsupported versions, bad config, env and args are refused with the spec\'s codes', async () => {
    const { topo, d } = env();
    const sb = await makeSandbox(topo.workDir, 'versions');
    try {
      for (const [i, version] of ['0.4.0', '1.0.0', '1.1.0'].entries()) {
        const ifname = `net${i}`;
        const add = await call({ command: 'ADD', containerId: 'c1', netns: sb.path, ifname, config: conf({}, version) });
        expect(add.exitCode, add.stdout).toBe(0);
        expectAddResult(version, add.json, ifname, sb.path);
        // The sandbox's first attachment takes the default route; later ones do not.
        expect(add.json.routes.length).toBe(i === 0 ? 1 : 0);
        if (version === '1.1.0') expect(add.json.interfaces[0].mtu).toBe(1500);
        const check = await call({ command: 'CHECK', containerId: 'c1', netns: sb.path, ifname, config: conf({ prevResult: add.json }, version) });
        expect(check.exitCode, check.stdout).toBe(0);
      }
      const id = containerId();
      const add = (inv: Partial<Parameters<typeof cniCall>[1]>) => call({ command: 'ADD', containerId: id, netns: sb.path, ifname: 'eth9', config: conf(), ...inv });
      expectCniError(await add({ config: conf({}, '0.3.1') }), 1, /incompatible CNI version 0\.3\.1/);
      expectCniError(await add({ config: '{"cniVersion":' }), 6);
      expectCniError(await add({ config: conf({ bridgeMode: 'x', hairpin: true }) }), 7, /unknown network configuration keys "bridgeMode", "hairpin"/);
      expectCniError(await add({ config: conf({ ipam: { type: 'host-local' } }) }), 7, /ipam/);
      expectCniError(await add({ config: conf({ mtu: 'big' }) }), 7, /"mtu" must be a number/);
      expectCniError(await add({ config: conf({ type: 'bridge' }) }), 7, /type/);
      expectCniError(await add({ netns: path.join(topo.workDir, 'no-such-netns') }), 3, /cannot open CNI_NETNS/);
      expectCniError(await add({ ifname: 'eth0:1' }), 4, /CNI_IFNAME/);
      expectCniError(await add({ ifname: 'a-very-long-interface' }), 4, /CNI_IFNAME/);
      expectCniError(await add({ containerId: '' }), 4, /CNI_CONTAINERID/);
      expectCniError(await add({ args: 'FOO=bar' }), 4, /unknown key FOO/);
      expectCniError(await add({ args: 'IP=10.99.0.5' }), 100, /10\.99\.0\.5/);
      expectCniError(
        await add({ config: conf({ runtimeConfig: { portMappings: [{ hostPort: 0, containerPort: 80 }] } }) }),
        7,
        /portMappings\[0\]\.hostPort/,
      );
      expectCniError(await call({ command: 'FROB', containerId: id, config: conf() }), 4, /unknown CNI_COMMAND/);
      // None of the refused ADDs left anything: one record per accepted attachment, no eth9.
      expect((await inSandbox(sb.path)('ip', ['link', 'show', 'eth9'])).exitCode).not.toBe(0);
      expect(((await d.cliJson(['ps', '--json'])) as any[]).length).toBe(3);
      for (const [i] of ['0.4.0', '1.0.0', '1.1.0'].entries()) {
        expect((await call({ command: 'DEL', containerId: 'c1', netns: sb.path, ifname: `net${i}`, config: conf() })).exitCode).toBe(0);
      }
    } finally {
      await sb.remove();
    }
  });

  it('static IP and MAC (CNI_ARGS and capabilities), CRI-style PascalCase port mappings, UDP and a host IP', async () => {
    const { topo, d } = env();
    const sb = await makeSandbox(topo.workDir, 'static');
    try {
      const add = await call({
        command: 'ADD',
        containerId: 'static1',
        netns: sb.path,
        ifname: 'eth0',
        args: 'IgnoreUnknown=1;IP=10.88.7.50;MAC=02:42:0a:58:07:32',
        config: conf({
          runtimeConfig: {
            portMappings: [
              { HostPort: 5353, ContainerPort: 53, Protocol: 'UDP', HostIP: topo.hostIp },
              { HostPort: 8081, ContainerPort: 80, Protocol: 'TCP' },
            ],
          },
        }),
      });
      expect(add.exitCode, add.stdout).toBe(0);
      expect(add.json.ips[0].address).toBe('10.88.7.50/24');
      expect(add.json.interfaces[0].mac).toBe('02:42:0a:58:07:32');
      const ports = ((await d.cliJson(['ps', '--json'])) as any[])[0].Ports;
      expect(ports).toMatch(new RegExp(`${topo.hostIp.replace(/\./g, '\\.')}:5353->53/udp`));
      const server = await startEchoServer(sb.path, ['udp:53', 'tcp:80']);
      try {
        expect((await probe(topo.inClient, 'udp', topo.hostIp, 5353)).ok).toBe(true);
        expect((await probe(topo.inClient, 'tcp', topo.hostIp, 8081)).ok).toBe(true);
      } finally {
        await server.stop();
      }
      // The same address for another sandbox: refused by the core, nothing left behind.
      const other = await makeSandbox(topo.workDir, 'static2');
      try {
        const dup = await call({ command: 'ADD', containerId: 'static2', netns: other.path, ifname: 'eth0', config: conf({ runtimeConfig: { ips: ['10.88.7.50/24'] } }) });
        expectCniError(dup, 100, /10\.88\.7\.50/);
        expect((await inSandbox(other.path)('ip', ['link', 'show', 'eth0'])).exitCode).not.toBe(0);
        // A host port another attachment holds: refused, and the failed ADD undid its veth and address.
        const clash = await call({ command: 'ADD', containerId: 'static2', netns: other.path, ifname: 'eth0', config: conf({ runtimeConfig: { portMappings: [{ hostPort: 8081, containerPort: 80 }] } }) });
        expectCniError(clash, 100, /8081/);
        expect((await inSandbox(other.path)('ip', ['link', 'show', 'eth0'])).exitCode).not.toBe(0);
        expect(((await d.cliJson(['ps', '--json'])) as any[]).length).toBe(1);
      } finally {
        await other.remove();
      }
    } finally {
      await sb.remove();
    }
  });

  it('parallel ADDs get distinct addresses; CHECK finds what was changed behind its back; GC keeps only valid attachments', async () => {
    const { topo, d } = env();
    const sandboxes = await Promise.all(Array.from({ length: 6 }, (_, i) => makeSandbox(topo.workDir, `par${i}`)));
    try {
      const results = await Promise.all(sandboxes.map((sb, i) => call({ command: 'ADD', containerId: `par${i}`, netns: sb.path, ifname: 'eth0', config: conf() })));
      for (const r of results) expect(r.exitCode, r.stdout).toBe(0);
      const ips = results.map((r) => r.json.ips[0].address);
      expect(new Set(ips).size).toBe(6);

      const sb0 = sandboxes[0]!;
      const check = () => call({ command: 'CHECK', containerId: 'par0', netns: sb0.path, ifname: 'eth0', config: conf({ prevResult: results[0]!.json }) });
      expect((await check()).exitCode).toBe(0);
      await inSandbox(sb0.path)('ip', ['addr', 'flush', 'dev', 'eth0']);
      expectCniError(await check(), 101, /lacks address/);
      expectCniError(await call({ command: 'CHECK', containerId: 'nope', netns: sb0.path, ifname: 'eth0', config: conf() }), 3);

      expect((await call({ command: 'STATUS', config: conf() })).exitCode).toBe(0);
      const gc = await call({
        command: 'GC',
        config: conf({ 'cni.dev/valid-attachments': [0, 1, 2].map((i) => ({ containerID: `par${i}`, ifname: 'eth0' })) }, '1.1.0'),
      });
      expect(gc.exitCode, gc.stdout).toBe(0);
      const left = ((await d.cliJson(['ps', '--json'])) as any[]).map((c) => c.Names).sort();
      expect(left).toEqual(['par0', 'par1', 'par2']);
      expect((await inSandbox(sandboxes[4]!.path)('ip', ['link', 'show', 'eth0'])).exitCode).not.toBe(0);
      expectCniError(await call({ command: 'GC', config: conf({}, '1.1.0') }), 7, /valid-attachments/);
    } finally {
      await Promise.all(sandboxes.map((s) => s.remove()));
    }
  });

  it('a DEL while the daemon is down is queued and done when it is back; a sandbox destroyed without DEL is forgotten', async () => {
    const { topo, d } = env();
    const a = await makeSandbox(topo.workDir, 'queued');
    const b = await makeSandbox(topo.workDir, 'lost');
    let bRemoved = false;
    try {
      for (const [id, sb] of [['queued', a], ['lost', b]] as const) {
        const r = await call({ command: 'ADD', containerId: id, netns: sb.path, ifname: 'eth0', config: conf() });
        expect(r.exitCode, r.stdout).toBe(0);
      }
      await d.stop();
      const del = await call({ command: 'DEL', containerId: 'queued', netns: a.path, ifname: 'eth0', config: conf() });
      expect(del.exitCode, del.stdout + del.stderr).toBe(0);
      const pending = path.join(path.dirname(d.socket), 'cni-pending');
      expect((await readdir(pending)).filter((f) => f.startsWith('del-')).length).toBe(1);
      // The runtime destroys the other sandbox, saying nothing.
      await b.remove();
      bRemoved = true;
      await d.restart();
      await expect.poll(async () => ((await d.cliJson(['ps', '--json'])) as any[]).length, { timeout: 10_000 }).toBe(0);
      expect((await readdir(pending)).filter((f) => f.startsWith('del-'))).toEqual([]);
      expect((await inSandbox(a.path)('ip', ['link', 'show', 'eth0'])).exitCode).not.toBe(0);
      // Logged after the removal: the line may come a moment after the record went.
      await expect.poll(() => d.logs(), { timeout: 5_000 }).toMatch(/queued DEL of queued/);
      // While running: a sandbox destroyed without DEL goes on the next pass.
      const c = await makeSandbox(topo.workDir, 'lost2');
      expect((await call({ command: 'ADD', containerId: 'lost2', netns: c.path, ifname: 'eth0', config: conf() })).exitCode).toBe(0);
      await c.remove();
      await expect.poll(async () => ((await d.cliJson(['ps', '--json'])) as any[]).length, { timeout: 10_000 }).toBe(0);
      // And the same container started again in a new sandbox before any pass
      // (the daemon restarted without periodic passes): not refused.
      await d.stop();
      await d.restart({ args: ['--cni-gc-interval', '0'] });
      const e1 = await makeSandbox(topo.workDir, 'again1');
      expect((await call({ command: 'ADD', containerId: 'again', netns: e1.path, ifname: 'eth0', config: conf() })).exitCode).toBe(0);
      await e1.remove();
      const e2 = await makeSandbox(topo.workDir, 'again2');
      try {
        const r = await call({ command: 'ADD', containerId: 'again', netns: e2.path, ifname: 'eth0', config: conf() });
        expect(r.exitCode, r.stdout).toBe(0);
        await expect.poll(() => d.logs(), { timeout: 5_000 }).toMatch(/attachment cni-again-eth0: its veth is gone/);
      } finally {
        await e2.remove();
      }
    } finally {
      await a.remove();
      if (!bRemoved) await b.remove();
    }
  });

  it('`bridgeport cni conflist` prints and writes the conflist a runtime reads', async () => {
    const { topo, d } = env();
    await ok(d, ['network', 'create', 'appnet', '--subnet', '10.88.9.0/24']);
    const printed = JSON.parse(await ok(d, ['cni', 'conflist', 'appnet']));
    expect(printed).toEqual({
      cniVersion: '1.0.0',
      cniVersions: ['1.0.0', '1.1.0'],
      name: 'appnet',
      plugins: [{ type: 'bridgeport', socket: d.socket, capabilities: { portMappings: true, ips: true, mac: true } }],
    });
    const dir = path.join(topo.workDir, 'net.d');
    const file = (await ok(d, ['cni', 'conflist', 'appnet', '--write', dir])).trim();
    expect(file).toBe(path.join(dir, '05-bridgeport-appnet.conflist'));
    expect(JSON.parse(await readFile(file, 'utf8'))).toEqual(printed);
    expect((await d.cli(['cni', 'conflist', 'nosuchnet'])).stderr).toMatch(/network nosuchnet not found/);
    expect(existsSync(path.join(dir, '05-bridgeport-nosuchnet.conflist'))).toBe(false);
    // The plugin reads it as a runtime would: the plugin's entry plus name and version.
    const sb = await makeSandbox(topo.workDir, 'fromlist');
    try {
      const entry = { ...printed.plugins[0], name: printed.name, cniVersion: printed.cniVersion };
      const r = await call({ command: 'ADD', containerId: 'fromlist', netns: sb.path, ifname: 'eth0', config: entry });
      expect(r.exitCode, r.stdout).toBe(0);
      expect(r.json.ips[0].address).toMatch(/^10\.88\.9\./);
    } finally {
      await sb.remove();
    }
  });
});

describePriv('CNI plugin installation', () => {
  it('`make install` puts the plugin where runtimes look, under its own name and as the conflist type', async () => {
    expect(existsSync(CNI_PLUGIN)).toBe(true);
    const dest = await mkdtemp(path.join(os.tmpdir(), 'bp-install-'));
    try {
      const r = await runCommand(['make', '-s', '-C', REPO_ROOT, 'install', `DESTDIR=${dest}`]);
      expect(r.exitCode, r.stderr).toBe(0);
      for (const dir of ['usr/lib/cni', 'opt/cni/bin']) {
        expect(await readlink(path.join(dest, dir, 'bridgeport'))).toBe('bridgeport-cni');
        const version = await execa(path.join(dest, dir, 'bridgeport'), [], { input: '{"cniVersion":"1.0.0"}', env: { CNI_COMMAND: 'VERSION' }, extendEnv: false });
        expect(JSON.parse(version.stdout).supportedVersions).toContain('1.0.0');
      }
    } finally {
      await rm(dest, { recursive: true, force: true });
    }
  });
});
