import { expect, it } from 'vitest';
import { DATAPATHS, describePriv } from '../helpers/privileged.js';
import { fails, inContainer, ipOf, ok, peerIp, probe, runEcho, useDaemon } from '../helpers/scenario.js';
import { startEchoServer } from '../helpers/traffic.js';

describePriv.each(DATAPATHS)('isolation and masquerade (%s)', (datapath) => {
  const env = useDaemon(datapath);

  it('containers on one network talk to each other (icc on)', async () => {
    const { d } = env();
    await ok(d, ['network', 'create', 'app']);
    const a = await runEcho(d, 'a', { network: 'app' });
    const b = await runEcho(d, 'b', { network: 'app' });
    const r = await probe(inContainer(d, 'a'), 'tcp', ipOf(b, 'app'), 80);
    expect(r.ok, JSON.stringify(r)).toBe(true);
    expect(peerIp(r)).toBe(ipOf(a, 'app'));
    expect((await probe(inContainer(d, 'b'), 'udp', ipOf(a, 'app'), 53)).ok).toBe(true);
  });

  it('--icc=false refuses container to container; --link permits the exposed ports, one way', async () => {
    const { d } = env();
    await ok(d, ['network', 'create', 'quiet', '--icc=false']);
    const db = await runEcho(d, 'db', { network: 'quiet', flags: ['--expose', '80'], specs: ['tcp:80', 'tcp:81'] });
    const app = await runEcho(d, 'app', { network: 'quiet', flags: ['--link', 'db:database'] });
    await runEcho(d, 'stranger', { network: 'quiet' });
    const dbIp = ipOf(db, 'quiet');

    const linked = await probe(inContainer(d, 'app'), 'tcp', dbIp, 80);
    expect(linked.ok, JSON.stringify(linked)).toBe(true);
    expect(peerIp(linked)).toBe(ipOf(app, 'quiet'));
    // The alias resolves through the container's /etc/hosts.
    expect((await probe(inContainer(d, 'app'), 'tcp', 'database', 80)).ok).toBe(true);
    expect((await ok(d, ['exec', 'app', '--', 'cat', '/etc/hosts'])).split('\n')).toContain(`${dbIp}\tdatabase ${db.Config.Hostname} db`);

    expect((await probe(inContainer(d, 'app'), 'tcp', dbIp, 81)).ok, 'port 81 is not exposed').toBe(false);
    expect((await probe(inContainer(d, 'db'), 'tcp', ipOf(app, 'quiet'), 80)).ok, 'links are one way').toBe(false);
    expect((await probe(inContainer(d, 'stranger'), 'tcp', dbIp, 80)).ok, 'no link, no traffic').toBe(false);
  });

  it('isolates networks from each other', async () => {
    const { topo, d } = env();
    await ok(d, ['network', 'create', 'n1']);
    await ok(d, ['network', 'create', 'n2']);
    const c1 = await runEcho(d, 'c1', { network: 'n1' });
    const c2 = await runEcho(d, 'c2', { network: 'n2', flags: ['-p', '8090:80'] });
    expect((await probe(inContainer(d, 'c1'), 'tcp', ipOf(c2, 'n2'), 80)).ok).toBe(false);
    expect((await probe(inContainer(d, 'c2'), 'tcp', ipOf(c1, 'n1'), 80)).ok).toBe(false);
    expect((await probe(inContainer(d, 'c1'), 'udp', ipOf(c2, 'n2'), 53)).ok).toBe(false);
    // A published port is reachable from anywhere, other networks included (as in Docker).
    expect((await probe(inContainer(d, 'c1'), 'tcp', topo.hostIp, 8090)).ok).toBe(true);
  });

  it('--internal networks: containers talk inside, nothing leaves, nothing is published', async () => {
    const { topo, d } = env();
    const server = await startEchoServer(topo.clientNsPath, ['tcp:7777']);
    try {
      await ok(d, ['network', 'create', 'vault', '--internal']);
      await runEcho(d, 'i1', { network: 'vault' });
      const i2 = await runEcho(d, 'i2', { network: 'vault' });
      expect((await probe(inContainer(d, 'i1'), 'tcp', ipOf(i2, 'vault'), 80)).ok).toBe(true);
      expect((await probe(inContainer(d, 'i1'), 'tcp', topo.clientIp, 7777)).ok).toBe(false);
      expect(await fails(d, ['publish', 'i1', '-p', '8091:80'])).toMatch(/internal/);
      // Control: the same destination is reachable from a normal network.
      await runEcho(d, 'outside');
      expect((await probe(inContainer(d, 'outside'), 'tcp', topo.clientIp, 7777)).ok).toBe(true);
    } finally {
      await server.stop();
    }
  });

  it('masquerades egress to the uplink address; --masquerade=false keeps the container address', async () => {
    const { topo, d } = env();
    const server = await startEchoServer(topo.clientNsPath, ['tcp:7777', 'udp:7778']);
    try {
      await runEcho(d, 'masq');
      const tcp = await probe(inContainer(d, 'masq'), 'tcp', topo.clientIp, 7777);
      expect(tcp.ok, JSON.stringify(tcp)).toBe(true);
      expect(peerIp(tcp)).toBe(topo.hostIp);
      const udp = await probe(inContainer(d, 'masq'), 'udp', topo.clientIp, 7778);
      expect(peerIp(udp)).toBe(topo.hostIp);
      // Larger than the MTU: every fragment leaves with the uplink address, every reply fragment comes back.
      const big = await probe(inContainer(d, 'masq'), 'udp', topo.clientIp, 7778, { size: 4000 });
      expect(big.ok, JSON.stringify(big)).toBe(true);
      expect(peerIp(big)).toBe(topo.hostIp);

      await ok(d, ['network', 'create', 'routed', '--subnet', '172.29.0.0/24', '--masquerade=false']);
      const plain = await runEcho(d, 'plain', { network: 'routed' });
      await topo.inClient('ip', ['route', 'add', '172.29.0.0/24', 'via', topo.hostIp]);
      const r = await probe(inContainer(d, 'plain'), 'tcp', topo.clientIp, 7777);
      expect(r.ok, JSON.stringify(r)).toBe(true);
      expect(peerIp(r)).toBe(ipOf(plain, 'routed'));
      // Routed, not open: new connections from outside to an unpublished port are still dropped.
      expect((await probe(topo.inClient, 'tcp', ipOf(plain, 'routed'), 80)).ok).toBe(false);
    } finally {
      await server.stop();
    }
  });
});
