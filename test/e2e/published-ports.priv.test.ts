import { expect, it } from 'vitest';
import { DATAPATHS, describePriv } from '../helpers/privileged.js';
import { inContainer, inspect, ipOf, localPort, ok, peerIp, probe, runEcho, useDaemon } from '../helpers/scenario.js';

describePriv.each(DATAPATHS)('published ports (%s)', (datapath) => {
  const env = useDaemon(datapath, ['--ephemeral-ports', '40000-40099']);

  it('forwards TCP and UDP from the client through the uplink address, keeping the client address', async () => {
    const { topo, d } = env();
    await runEcho(d, 'web', { flags: ['-p', '8080:80', '-p', '5353:53/udp'] });

    const tcp = await probe(topo.inClient, 'tcp', topo.hostIp, 8080);
    expect(tcp.ok, JSON.stringify(tcp)).toBe(true);
    expect(peerIp(tcp)).toBe(topo.clientIp);
    expect(localPort(tcp)).toBe(80);

    const udp = await probe(topo.inClient, 'udp', topo.hostIp, 5353);
    expect(udp.ok, JSON.stringify(udp)).toBe(true);
    expect(peerIp(udp)).toBe(topo.clientIp);
    expect(localPort(udp)).toBe(53);

    // An unpublished port is not forwarded.
    expect((await probe(topo.inClient, 'tcp', topo.hostIp, 8081)).ok).toBe(false);
  });

  it('forwards UDP datagrams larger than the MTU (fragments both ways), keeping the client address', async () => {
    const { topo, d } = env();
    await runEcho(d, 'big', { flags: ['-p', '5356:53/udp'] });
    // 4000 bytes over 1500-byte links: three fragments in, three in the reply.
    const udp = await probe(topo.inClient, 'udp', topo.hostIp, 5356, { size: 4000 });
    expect(udp.ok, JSON.stringify(udp)).toBe(true);
    expect(peerIp(udp)).toBe(topo.clientIp);
    expect(localPort(udp)).toBe(53);
  });

  it('binds only the given host address', async () => {
    const { topo, d } = env();
    await topo.inHost('ip', ['addr', 'add', '198.18.0.3/24', 'dev', topo.uplink]);
    await runEcho(d, 'web', { flags: ['-p', `${topo.hostIp}:8081:80`] });
    expect((await probe(topo.inClient, 'tcp', topo.hostIp, 8081)).ok).toBe(true);
    const other = await probe(topo.inClient, 'tcp', '198.18.0.3', 8081);
    expect(other.ok).toBe(false);

    // A network's --host-binding-ip is the default for SPECs that name no address.
    await ok(d, ['network', 'create', 'bound', '--host-binding-ip', '198.18.0.3']);
    await runEcho(d, 'web2', { network: 'bound', flags: ['-p', '8088:80'] });
    expect((await ok(d, ['port', 'web2'])).trim()).toBe('80/tcp -> 198.18.0.3:8088');
    expect((await probe(topo.inClient, 'tcp', '198.18.0.3', 8088)).ok).toBe(true);
    expect((await probe(topo.inClient, 'tcp', topo.hostIp, 8088)).ok).toBe(false);
  });

  it('a port bound to 127.0.0.1 is reachable from the host, not through the uplink', async () => {
    const { topo, d } = env();
    const web = await runEcho(d, 'web', { flags: ['-p', '127.0.0.1:8082:80', '-p', '8083:80'] });
    const fromHost = await probe(topo.inHost, 'tcp', '127.0.0.1', 8082);
    expect(fromHost.ok, JSON.stringify(fromHost)).toBe(true);
    // Host-local sources are masqueraded to the bridge address so the reply can come back.
    expect(peerIp(fromHost)).toBe(web.NetworkSettings.Gateway);
    expect((await probe(topo.inClient, 'tcp', topo.hostIp, 8082)).ok).toBe(false);

    // Route 127.0.0.1 from the client to the host, and let the host accept it on the
    // uplink (route_localnet): now only the datapath's own drop stops it.
    await topo.inHost('sysctl', ['-qw', `net.ipv4.conf.${topo.uplink}.route_localnet=1`]);
    await topo.inClient('sysctl', ['-qw', 'net.ipv4.conf.eth0.route_localnet=1']);
    await topo.inClient('ip', ['route', 'add', '127.0.0.1/32', 'via', topo.hostIp, 'dev', 'eth0', 'table', '100']);
    await topo.inClient('ip', ['rule', 'add', 'pref', '10', 'to', '127.0.0.1/32', 'ipproto', 'tcp', 'lookup', '100']);
    // The local table is consulted first (pref 0): move it behind our rule.
    await topo.inClient('ip', ['rule', 'add', 'pref', '100', 'lookup', 'local']);
    await topo.inClient('ip', ['rule', 'del', 'pref', '0']);
    const control = await probe(topo.inClient, 'tcp', '127.0.0.1', 8083);
    expect(control.ok, `the client's 127.0.0.1 route must reach the host: ${JSON.stringify(control)}`).toBe(true);
    const blocked = await probe(topo.inClient, 'tcp', '127.0.0.1', 8082);
    expect(blocked.ok, JSON.stringify(blocked)).toBe(false);
  });

  it('-P publishes every exposed port on a port from the ephemeral range', async () => {
    const { topo, d } = env();
    await runEcho(d, 'web', { flags: ['--expose', '80', '--expose', '53/udp', '-P'] });
    const ports = (await d.cliJson(['port', 'web', '--json'])) as { proto: string; hostPort: number; containerPort: number }[];
    expect(ports.map((p) => `${p.containerPort}/${p.proto}`).sort()).toEqual(['53/udp', '80/tcp']);
    for (const p of ports) {
      expect(p.hostPort).toBeGreaterThanOrEqual(40000);
      expect(p.hostPort).toBeLessThanOrEqual(40099);
      const r = await probe(topo.inClient, p.proto as 'tcp' | 'udp', topo.hostIp, p.hostPort);
      expect(r.ok, JSON.stringify(r)).toBe(true);
      expect(localPort(r)).toBe(p.containerPort);
    }
    const tcp = ports.find((p) => p.proto === 'tcp')!;
    expect((await ok(d, ['port', 'web', '80/tcp'])).trim()).toBe(`80/tcp -> 0.0.0.0:${tcp.hostPort}`);
  });

  it('maps port ranges one to one, and hostIP::port to an ephemeral port', async () => {
    const { topo, d } = env();
    await runEcho(d, 'web', { flags: ['-p', '9000-9002:7000-7002', '-p', `${topo.hostIp}::7000`], specs: ['tcp:7000-7002'] });
    for (const [host, container] of [
      [9000, 7000],
      [9001, 7001],
      [9002, 7002],
    ] as const) {
      const r = await probe(topo.inClient, 'tcp', topo.hostIp, host);
      expect(r.ok, JSON.stringify(r)).toBe(true);
      expect(localPort(r)).toBe(container);
    }
    const info = await inspect(d, 'web');
    const eph = info.NetworkSettings.Ports['7000/tcp'].find((b: any) => b.HostIp === topo.hostIp);
    expect(Number(eph.HostPort)).toBeGreaterThanOrEqual(40000);
    expect(localPort(await probe(topo.inClient, 'tcp', topo.hostIp, Number(eph.HostPort)))).toBe(7000);
  });

  it('publishes and unpublishes ports of a running container', async () => {
    const { topo, d } = env();
    await runEcho(d, 'web');
    expect((await probe(topo.inClient, 'tcp', topo.hostIp, 8084)).ok).toBe(false);
    expect((await ok(d, ['publish', 'web', '-p', '8084:80'])).trim()).toBe('80/tcp -> 0.0.0.0:8084');
    expect((await probe(topo.inClient, 'tcp', topo.hostIp, 8084)).ok).toBe(true);
    await ok(d, ['unpublish', 'web', '-p', '8084:80']);
    expect((await probe(topo.inClient, 'tcp', topo.hostIp, 8084)).ok).toBe(false);
  });

  it('port changes survive a kill -9 (they are journaled, not only rendered)', async () => {
    const { topo, d } = env();
    await runEcho(d, 'web', { flags: ['-p', '8094:80'] });
    await ok(d, ['publish', 'web', '-p', '8095:80', '-p', '8096-8097:80-81']);
    await ok(d, ['unpublish', 'web', '-p', '8094:80']);
    await ok(d, ['unpublish', 'web', '-p', '8097:81']);
    const listed = async () => ((await d.cliJson(['port', 'web', '--json'])) as { hostPort: number }[]).map((p) => p.hostPort).sort();
    expect(await listed()).toEqual([8095, 8096]);
    await d.kill9();
    await d.restart();
    expect(await listed()).toEqual([8095, 8096]);
    expect((await probe(topo.inClient, 'tcp', topo.hostIp, 8094)).ok).toBe(false);
    expect(localPort(await probe(topo.inClient, 'tcp', topo.hostIp, 8096))).toBe(80);
    // And again after the restart's whole save started a new journal.
    await ok(d, ['publish', 'web', '-p', '8098:80']);
    await d.kill9();
    await d.restart();
    expect(await listed()).toEqual([8095, 8096, 8098]);
    expect((await probe(topo.inClient, 'tcp', topo.hostIp, 8098)).ok).toBe(true);
  });

  it('a port published on a linked container opens to the container linking to it (--icc=false)', async () => {
    const { d } = env();
    await ok(d, ['network', 'create', 'quiet', '--icc=false']);
    const db = await runEcho(d, 'db', { network: 'quiet', specs: ['tcp:80', 'tcp:81'] });
    await runEcho(d, 'app', { network: 'quiet', flags: ['--link', 'db'] });
    const dbIp = ipOf(db, 'quiet');
    expect((await probe(inContainer(d, 'app'), 'tcp', dbIp, 81)).ok, 'not exposed yet').toBe(false);
    await ok(d, ['publish', 'db', '-p', '8181:81']);
    expect((await probe(inContainer(d, 'app'), 'tcp', dbIp, 81)).ok, 'a published port is exposed to links').toBe(true);
    await ok(d, ['unpublish', 'db', '-p', '8181:81']);
    expect((await probe(inContainer(d, 'app'), 'tcp', dbIp, 81)).ok, 'closed again').toBe(false);
  });

  it('flushes stale UDP conntrack entries when a port is published', async () => {
    const { topo, d } = env();
    await runEcho(d, 'dns');
    // A flow that reaches the host before the port is published leaves an
    // un-NATed conntrack entry behind; the same flow must be forwarded afterwards.
    const before = await probe(topo.inClient, 'udp', topo.hostIp, 5354, { sourcePort: 40500 });
    expect(before.ok).toBe(false);
    await ok(d, ['publish', 'dns', '-p', '5354:53/udp']);
    const after = await probe(topo.inClient, 'udp', topo.hostIp, 5354, { sourcePort: 40500 });
    expect(after.ok, JSON.stringify(after)).toBe(true);
    expect(localPort(after)).toBe(53);
  });

  it('hairpin: containers reach published ports through the host address, including their own', async () => {
    const { topo, d } = env();
    const web = await runEcho(d, 'web', { flags: ['-p', '8085:80'] });
    const other = await runEcho(d, 'other');
    const viaHost = await probe(inContainer(d, 'other'), 'tcp', topo.hostIp, 8085);
    expect(viaHost.ok, JSON.stringify(viaHost)).toBe(true);
    expect(peerIp(viaHost)).toBe(ipOf(other, 'bridge'));
    const toSelf = await probe(inContainer(d, 'web'), 'tcp', topo.hostIp, 8085);
    expect(toSelf.ok, JSON.stringify(toSelf)).toBe(true);
    // Masqueraded to the gateway so the reply goes back through the bridge.
    expect(peerIp(toSelf)).toBe(web.NetworkSettings.Networks.bridge.Gateway);
  });

  it('host processes reach published ports on 127.0.0.1 and on host addresses', async () => {
    const { topo, d } = env();
    await runEcho(d, 'web', { flags: ['-p', '8086:80', '-p', '5355:53/udp'] });
    const inHost = topo.inHost;
    for (const addr of ['127.0.0.1', topo.hostIp]) {
      const tcp = await probe(inHost, 'tcp', addr, 8086);
      expect(tcp.ok, `${addr}: ${JSON.stringify(tcp)}`).toBe(true);
      expect(localPort(tcp)).toBe(80);
      const udp = await probe(inHost, 'udp', addr, 5355);
      expect(udp.ok, `${addr}: ${JSON.stringify(udp)}`).toBe(true);
    }
  });

  it.runIf(datapath === 'iptables')("the operator's BRIDGEPORT-USER chain is consulted before bridgeport's rules", async () => {
    const { topo, d } = env();
    await runEcho(d, 'web', { flags: ['-p', '8089:80'] });
    expect((await probe(topo.inClient, 'tcp', topo.hostIp, 8089)).ok).toBe(true);
    const deny = ['BRIDGEPORT-USER', '-s', `${topo.clientIp}/32`, '-j', 'DROP'];
    expect((await topo.inHost('iptables', ['-I', ...deny])).exitCode).toBe(0);
    expect((await probe(topo.inClient, 'tcp', topo.hostIp, 8089)).ok).toBe(false);
    // bridgeport's own changes leave the operator's rule in place.
    await ok(d, ['publish', 'web', '-p', '8189:80']);
    expect((await probe(topo.inClient, 'tcp', topo.hostIp, 8189)).ok).toBe(false);
    expect((await topo.inHost('iptables', ['-D', ...deny])).exitCode).toBe(0);
    expect((await probe(topo.inClient, 'tcp', topo.hostIp, 8189)).ok).toBe(true);
  });

  it('drops direct access to container addresses from outside, not from the host', async () => {
    const { topo, d } = env();
    const web = await runEcho(d, 'web', { flags: ['-p', '8087:80'] });
    const ip = ipOf(web, 'bridge');
    await topo.inClient('ip', ['route', 'add', '172.17.0.0/16', 'via', topo.hostIp]);
    expect((await probe(topo.inClient, 'tcp', topo.hostIp, 8087)).ok).toBe(true);
    const direct = await probe(topo.inClient, 'tcp', ip, 80);
    expect(direct.ok, JSON.stringify(direct)).toBe(false);
    expect((await probe(topo.inHost, 'tcp', ip, 80)).ok).toBe(true);
  });
});
