import { expect, it } from 'vitest';
import { IMAGE, useDockerScenario } from '../helpers/dockerd.js';
import { DATAPATHS, describePriv } from '../helpers/privileged.js';
import { installed, localPort, peerIp, probe, type Runner } from '../helpers/scenario.js';
import { startEchoServer } from '../helpers/traffic.js';

/**
 * Real dockerd drives bridgeport through the remote driver protocol: one
 * dockerd and one bridgeport daemon per datapath, in the topology's host
 * namespace and a mount namespace of their own (useDockerScenario).
 * Each scenario makes its own networks and containers and removes them.
 */
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const METRICS_PORT = 19478;

/** Polls `get` until `done` holds of its value (Docker's names are looked up shortly after the fact); the last value otherwise. */
async function eventually<T>(get: () => Promise<T>, done: (v: T) => boolean, ms = 15_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await get();
    if (done(v) || Date.now() > deadline) return v;
    await sleep(200);
  }
}

describePriv.each(DATAPATHS)('docker driver (%s)', (datapath) => {
  const s = useDockerScenario({
    what: 'docker driver',
    datapath,
    daemonArgs: (dk) => [
      '--docker-plugin', dk.pluginSocket, '--docker-host', `unix://${dk.socket}`,
      '--ephemeral-ports', '40000-40099', '--metrics-addr', `127.0.0.1:${METRICS_PORT}`,
    ],
  });
  const { env, docker, runEcho } = s;

  const createNetwork = (name: string, subnet: string, opts: string[] = []) =>
    docker(['network', 'create', '-d', 'bridgeport', '--subnet', subnet, ...opts, name]);

  /** Runs a command (the probe) inside a container. */
  const inContainer =
    (name: string): Runner =>
    (cmd, args) =>
      s.dk.docker(['exec', name, cmd, ...args]);

  const ipOf = (name: string, network: string) => docker(['inspect', name, '--format', `{{(index .NetworkSettings.Networks "${network}").IPAddress}}`]);

  /** The bridgeport record of a container's endpoint on a network. */
  const record = async (name: string, network: string) => {
    const id = await docker(['inspect', name, '--format', `{{(index .NetworkSettings.Networks "${network}").EndpointID}}`]);
    return `docker-${id.slice(0, 12)}`;
  };

  const bpInspect = async (rec: string): Promise<any> => ((await s.d.cliJson(['inspect', rec])) as any[])[0];
  /** Record names (a Docker container's name shown in ps comes once looked up; the record name stays). */
  const bpRecords = async (): Promise<string[]> => ((await s.d.cliJson(['ps', '--json'])) as any[]).map((c) => c.Record ?? c.Names);
  const veths = async (): Promise<string[]> =>
    (await s.topo.inHost('ip', ['-o', 'link', 'show', 'type', 'veth'])).stdout
      .split('\n')
      .filter(Boolean)
      .map((l) => l.split(':')[1]!.trim().split('@')[0]!)
      .sort();

  /** busybox httpd's REMOTE_ADDR comes IPv4-mapped ("[::ffff:198.18.0.2]"): the plain address. */
  const plain = (text: string): string => text.trim().replace(/^\[::ffff:([0-9.]+)\]$/, '$1');

  /** The body curl fetched; undefined when it failed. */
  const curl = async (run: Runner, url: string): Promise<string | undefined> => {
    const r = await run('curl', ['-s', '-m', '3', url]);
    return r.exitCode === 0 ? plain(r.stdout) : undefined;
  };

  it('network create -d bridgeport: options reach the core, unknown options are refused by name and change nothing', async (ctx) => {
    const { d } = env(ctx);
    const id = await createNetwork('opts', '10.66.1.0/24', [
      '--gateway', '10.66.1.254', '--aux-address', 'router=10.66.1.5',
      '-o', 'com.docker.network.driver.mtu=1400', '-o', 'com.docker.network.bridge.name=bpd-opts',
      '-o', 'com.docker.network.bridge.enable_icc=false', '-o', 'com.docker.network.bridge.enable_ip_masquerade=false',
      '-o', `com.docker.network.bridge.host_binding_ipv4=${s.topo.hostIp}`,
    ]);
    const net = ((await d.cliJson(['network', 'inspect', `docker-${id.slice(0, 12)}`])) as any[])[0];
    expect(net.IPAM.Config[0]).toEqual({ Subnet: '10.66.1.0/24', Gateway: '10.66.1.254' });
    expect(net.Options).toMatchObject({
      'com.docker.network.bridge.name': 'bpd-opts',
      'com.docker.network.driver.mtu': '1400',
      'com.docker.network.bridge.enable_icc': 'false',
      'com.docker.network.bridge.enable_ip_masquerade': 'false',
      'com.docker.network.bridge.host_binding_ipv4': s.topo.hostIp,
    });
    expect((await s.topo.inHost('ip', ['-o', 'addr', 'show', 'dev', 'bpd-opts'])).stdout).toContain('10.66.1.254/24');

    // Docker's name of the network, looked up after the fact; then nothing changes the listing.
    const listed = await eventually(async () => (await d.cliJson(['network', 'ls', '--json'])) as any[], (l) => l.some((n) => n.Name === 'opts'));
    expect(listed.find((n) => n.Record === `docker-${id.slice(0, 12)}`)?.Name).toBe('opts');
    const before = (await d.cliJson(['network', 'ls', '--json'])) as any[];
    const bad = await s.dk.docker(['network', 'create', '-d', 'bridgeport', '--subnet', '10.66.2.0/24', '-o', 'com.example.colour=red', 'bad']);
    expect(bad.exitCode).not.toBe(0);
    expect(bad.stderr).toMatch(/unsupported network option "com\.example\.colour"/);
    expect((await s.dk.docker(['network', 'inspect', 'bad'])).exitCode).not.toBe(0);
    expect(await d.cliJson(['network', 'ls', '--json'])).toEqual(before);
    // The network is Docker's: bridgeport's own CLI does not remove it behind dockerd's back.
    const rm = await d.cli(['network', 'rm', `docker-${id.slice(0, 12)}`]);
    expect(rm.stderr).toMatch(/managed by docker/);
    await docker(['network', 'rm', 'opts']);
    expect((await s.topo.inHost('ip', ['link', 'show', 'bpd-opts'])).exitCode).not.toBe(0);
  });

  it('docker run -p 8080:80: busybox httpd answers the client, which it sees by its own address; host, hairpin, MTU on both ends; direct access dropped', async (ctx) => {
    const { topo, d } = env(ctx);
    if (datapath === 'iptables') {
      // The condition this runs under: dockerd's FORWARD policy, with bridged frames passing FORWARD.
      expect((await topo.inHost('iptables', ['-S', 'FORWARD'])).stdout).toContain('-P FORWARD DROP');
    }
    await createNetwork('web', '10.66.3.0/24', ['-o', 'com.docker.network.driver.mtu=1400']);
    await docker(['run', '-d', '--name', 'httpd', '--network', 'web', '-p', '8080:80', IMAGE, 'httpd', '-f', '-p', '80', '-h', '/www']);
    let seen: string | undefined;
    for (let i = 0; i < 50 && seen === undefined; i++) {
      seen = await curl(topo.inClient, `http://${topo.hostIp}:8080/cgi-bin/ip`);
      if (seen === undefined) await sleep(100);
    }
    expect(seen, 'the client fetches through the published port').toBe(topo.clientIp);

    // MTU on both ends of the veth (dockerd never sets it).
    const rec = await bpInspect(await record('httpd', 'web'));
    const hostIf = (Object.values(rec.NetworkSettings.Networks)[0] as any).HostInterfaceName;
    expect((await topo.inHost('ip', ['-o', 'link', 'show', 'dev', hostIf])).stdout).toContain('mtu 1400');
    expect(await docker(['exec', 'httpd', 'cat', '/sys/class/net/eth0/mtu'])).toBe('1400');
    // dockerd cannot show a remote driver's ports; bridgeport can.
    expect(await docker(['port', 'httpd'])).toBe('');
    expect((await d.cli(['port', rec.Name.slice(1)])).stdout.trim()).toBe('80/tcp -> 0.0.0.0:8080');

    // Host processes, and a neighbour through the host address (hairpin).
    expect(await curl(topo.inHost, 'http://127.0.0.1:8080/')).toBe('bridgeport');
    await runEcho('neighbour', 'web');
    const neighbourIp = await ipOf('neighbour', 'web');
    const hairpin = await s.dk.docker(['exec', 'neighbour', 'wget', '-qO-', `http://${topo.hostIp}:8080/cgi-bin/ip`]);
    expect(plain(hairpin.stdout), hairpin.stderr).toBe(neighbourIp);

    // Straight to the container's address from outside: dropped.
    const httpdIp = await ipOf('httpd', 'web');
    await topo.inClient('ip', ['route', 'add', '10.66.3.0/24', 'via', topo.hostIp]);
    expect(await curl(topo.inClient, `http://${httpdIp}:80/`)).toBeUndefined();
    await topo.inClient('ip', ['route', 'del', '10.66.3.0/24']);

    await docker(['rm', '-f', 'httpd', 'neighbour']);
    expect(await curl(topo.inClient, `http://${topo.hostIp}:8080/`)).toBeUndefined();
    await docker(['network', 'rm', 'web']);
  });

  it('-P with --expose and UDP: host ports from the ephemeral range, the client seen by its own address', async (ctx) => {
    const { topo, d } = env(ctx);
    await createNetwork('pub', '10.66.4.0/24');
    // -P publishes the exposed ports that no -p names, each on a port of bridgeport's ephemeral range.
    await runEcho('echo', 'pub', ['--expose', '81', '--expose', '54/udp', '-P', '-p', '5353:53/udp', '-p', `${topo.hostIp}::80`], ['tcp:80', 'tcp:81', 'udp:53', 'udp:54']);
    const ports = (await d.cliJson(['port', await record('echo', 'pub'), '--json'])) as { proto: string; hostIp: string; hostPort: number; containerPort: number }[];
    expect(ports.map((p) => `${p.containerPort}/${p.proto}`).sort()).toEqual(['53/udp', '54/udp', '80/tcp', '81/tcp']);
    for (const p of ports) {
      if (p.hostPort !== 5353) {
        expect(p.hostPort).toBeGreaterThanOrEqual(40000);
        expect(p.hostPort).toBeLessThanOrEqual(40099);
      }
      const r = await probe(topo.inClient, p.proto as 'tcp' | 'udp', topo.hostIp, p.hostPort);
      expect(r.ok, `${JSON.stringify(p)}: ${JSON.stringify(r)}`).toBe(true);
      expect(peerIp(r)).toBe(topo.clientIp);
      expect(localPort(r)).toBe(p.containerPort);
    }
    expect(ports.find((p) => p.containerPort === 80)?.hostIp).toBe(topo.hostIp);
    expect(ports.find((p) => p.containerPort === 53)?.hostPort).toBe(5353);
    await docker(['rm', '-f', 'echo']);
    await docker(['network', 'rm', 'pub']);
  });

  it('masquerade to the uplink address; icc=false and isolation between bridgeport networks', async (ctx) => {
    const { topo } = env(ctx);
    const server = await startEchoServer(topo.clientNsPath, ['tcp:7070']);
    try {
      await createNetwork('quiet', '10.66.5.0/24', ['-o', 'com.docker.network.bridge.enable_icc=false']);
      await createNetwork('other', '10.66.6.0/24');
      await runEcho('q1', 'quiet');
      await runEcho('q2', 'quiet');
      await runEcho('o1', 'other');
      const out = await probe(inContainer('q1'), 'tcp', topo.clientIp, 7070);
      expect(out.ok, JSON.stringify(out)).toBe(true);
      expect(peerIp(out), 'masqueraded to the uplink address').toBe(topo.hostIp);
      expect((await probe(inContainer('q1'), 'tcp', await ipOf('q2', 'quiet'), 80)).ok, 'icc=false').toBe(false);
      expect((await probe(inContainer('q1'), 'tcp', await ipOf('o1', 'other'), 80)).ok, 'another network').toBe(false);
      expect((await probe(inContainer('o1'), 'tcp', await ipOf('q1', 'quiet'), 80)).ok, 'another network').toBe(false);
      // Same network with icc: reachable.
      await runEcho('o2', 'other');
      expect((await probe(inContainer('o2'), 'tcp', await ipOf('o1', 'other'), 80)).ok, 'icc=true').toBe(true);
    } finally {
      await server.stop();
    }
    await docker(['rm', '-f', 'q1', 'q2', 'o1', 'o2']);
    await docker(['network', 'rm', 'quiet', 'other']);
  });

  it('internal network: no egress, no published ports, no default route', async (ctx) => {
    const { topo } = env(ctx);
    const server = await startEchoServer(topo.clientNsPath, ['tcp:7071']);
    try {
      await createNetwork('inner', '10.66.7.0/24', ['--internal']);
      await runEcho('i1', 'inner', ['-p', '8090:80']);
      await runEcho('i2', 'inner');
      expect((await probe(inContainer('i1'), 'tcp', topo.clientIp, 7071)).ok, 'egress').toBe(false);
      expect((await probe(topo.inClient, 'tcp', topo.hostIp, 8090)).ok, 'published port').toBe(false);
      expect(await docker(['exec', 'i1', 'ip', 'route'])).not.toContain('default');
      expect((await probe(inContainer('i1'), 'tcp', await ipOf('i2', 'inner'), 80)).ok, 'inside the network').toBe(true);
    } finally {
      await server.stop();
    }
    await docker(['rm', '-f', 'i1', 'i2']);
    await docker(['network', 'rm', 'inner']);
  });

  it('--ip and --mac-address; network connect and disconnect a running container', async (ctx) => {
    const { d } = env(ctx);
    await createNetwork('first', '10.66.8.0/24');
    await createNetwork('second', '10.66.9.0/24');
    await runEcho('c1', 'first', ['--ip', '10.66.8.50', '--mac-address', '02:42:aa:bb:cc:dd']);
    await runEcho('s1', 'second');
    await runEcho('f1', 'first');
    // The address and MAC dockerd gives are the endpoint's (the eBPF datapath drops a container sending with others).
    const first = (await bpInspect(await record('c1', 'first'))).NetworkSettings.Networks;
    expect(Object.values(first)[0]).toMatchObject({ IPAddress: '10.66.8.50', MacAddress: '02:42:aa:bb:cc:dd' });
    expect((await probe(inContainer('f1'), 'tcp', '10.66.8.50', 80)).ok).toBe(true);
    const records = (await bpRecords()).length;
    await docker(['network', 'connect', 'second', 'c1']);
    const c1Second = await ipOf('c1', 'second');
    expect(c1Second).toMatch(/^10\.66\.9\./);
    expect((await probe(inContainer('s1'), 'tcp', c1Second, 80)).ok, 'connected').toBe(true);
    expect((await bpRecords()).length).toBe(records + 1);
    const rec = await record('c1', 'second');
    const hostIf = (Object.values((await bpInspect(rec)).NetworkSettings.Networks)[0] as any).HostInterfaceName;
    await docker(['network', 'disconnect', 'second', 'c1']);
    expect((await probe(inContainer('s1'), 'tcp', c1Second, 80)).ok, 'disconnected').toBe(false);
    expect((await d.cli(['inspect', rec])).exitCode).not.toBe(0);
    expect(await veths()).not.toContain(hostIf);
    await docker(['rm', '-f', 'c1', 's1', 'f1']);
    await docker(['network', 'rm', 'first', 'second']);
  });

  it('a port conflict is refused with its cause, and changes nothing', async (ctx) => {
    const { d } = env(ctx);
    await createNetwork('clash', '10.66.10.0/24');
    await runEcho('holder', 'clash', ['-p', '8091:80']);
    const records = await bpRecords();
    const links = await veths();
    const r = await s.dk.docker(['run', '-d', '--name', 'second', '--network', 'clash', '-p', '8091:80', IMAGE, 'sleep', '60']);
    expect(r.exitCode).not.toBe(0);
    expect(r.stderr).toMatch(/host port 8091\/tcp on 0\.0\.0\.0 is already published/);
    expect(await bpRecords()).toEqual(records);
    expect(await veths()).toEqual(links);
    // The endpoint's port is still the first container's.
    expect((await d.cli(['port', await record('holder', 'clash')])).stdout.trim()).toBe('80/tcp -> 0.0.0.0:8091');
    await docker(['rm', '-f', 'holder', 'second']);
    await docker(['network', 'rm', 'clash']);
  });

  it('docker rm -f and network rm leave nothing behind: no veth, no map entry, no rule', async (ctx) => {
    const { topo, d } = env(ctx);
    const rules = await installed(topo, d);
    const links = await veths();
    await createNetwork('gone', '10.66.11.0/24', ['-o', 'com.docker.network.bridge.enable_icc=false']);
    await runEcho('g1', 'gone', ['-p', '8092:80', '-p', '5392:53/udp']);
    await runEcho('g2', 'gone', ['-P', '--expose', '81']);
    expect((await installed(topo, d)).length).toBeGreaterThan(rules.length);
    // An endpoint is Docker's to remove; bridgeport rm -f is the way out for one dockerd forgot,
    // and dockerd's DeleteEndpoint after it is answered all the same.
    const g2 = await record('g2', 'gone');
    expect((await d.cli(['rm', g2])).stderr).toMatch(/managed by docker/);
    expect((await d.cli(['rm', '-f', g2])).exitCode).toBe(0);
    await docker(['rm', '-f', 'g1', 'g2']);
    await docker(['network', 'rm', 'gone']);
    expect(await installed(topo, d)).toEqual(rules);
    expect(await veths()).toEqual(links);
  });

  it('kill -9 and restart of bridgeport: the published port keeps answering, later docker calls are answered', async (ctx) => {
    const { topo, d } = env(ctx);
    await createNetwork('durable', '10.66.12.0/24');
    await runEcho('dur', 'durable', ['-p', '8093:80']);
    const rec = await record('dur', 'durable');
    const hostIf = (Object.values((await bpInspect(rec)).NetworkSettings.Networks)[0] as any).HostInterfaceName;
    expect((await probe(topo.inClient, 'tcp', topo.hostIp, 8093)).ok).toBe(true);
    await d.kill9();
    const down = await probe(topo.inClient, 'tcp', topo.hostIp, 8093);
    expect(down.ok, `while bridgeport is down: ${JSON.stringify(down)}`).toBe(true);
    await d.restart();
    const up = await probe(topo.inClient, 'tcp', topo.hostIp, 8093);
    expect(up.ok, JSON.stringify(up)).toBe(true);
    expect(peerIp(up)).toBe(topo.clientIp);
    expect((await d.cli(['port', rec])).stdout.trim()).toBe('80/tcp -> 0.0.0.0:8093');
    // dockerd never replays: the restarted daemon answers from its state.
    await runEcho('dur2', 'durable');
    expect((await probe(inContainer('dur2'), 'tcp', await ipOf('dur', 'durable'), 80)).ok).toBe(true);
    await docker(['rm', '-f', 'dur']);
    expect((await d.cli(['inspect', rec])).exitCode).not.toBe(0);
    expect((await probe(topo.inClient, 'tcp', topo.hostIp, 8093)).ok).toBe(false);
    expect(await veths()).not.toContain(hostIf);
    await docker(['rm', '-f', 'dur2']);
    await docker(['network', 'rm', 'durable']);
  });

  it("Docker's names: ps, inspect, port, network ls and metrics show them; the endpoint ID while dockerd cannot be asked", async (ctx) => {
    const { topo, d } = env(ctx);
    const netId = await createNetwork('names', '10.66.13.0/24');
    await docker(['run', '-d', '--name', 'web', '--network', 'names', '-p', '8094:80', IMAGE, 'httpd', '-f', '-p', '80', '-h', '/www']);
    const rec = await record('web', 'names');
    const containerId = await docker(['inspect', 'web', '--format', '{{.Id}}']);
    const ps = async () => (await d.cliJson(['ps', '--json'])) as any[];
    const row = await eventually(async () => (await ps()).find((c) => c.Record === rec), (c) => c?.Names === 'web');
    expect(row).toMatchObject({ Names: 'web', Record: rec, Networks: 'names', Ports: '0.0.0.0:8094->80/tcp' });
    expect((await d.cli(['ps'])).stdout.split('\n').find((l) => l.includes('8094'))).toMatch(/\bweb\s+names\s*$/);

    const doc = await bpInspect('web');
    expect(doc).toMatchObject({ Name: '/web', Record: rec, Owner: { FrontEnd: 'docker', ContainerID: containerId, NetworkID: netId } });
    expect(Object.keys(doc.NetworkSettings.Networks)).toEqual(['names']);
    expect(doc.NetworkSettings.Ports).toEqual({ '80/tcp': [{ HostIp: '0.0.0.0', HostPort: '8094' }] });
    expect((await d.cli(['port', 'web'])).stdout.trim()).toBe('80/tcp -> 0.0.0.0:8094');
    expect((await d.cli(['port', rec])).stdout.trim()).toBe('80/tcp -> 0.0.0.0:8094');

    const nets = await eventually(async () => (await d.cliJson(['network', 'ls', '--json'])) as any[], (l) => l.some((n) => n.Name === 'names'));
    expect(nets.find((n) => n.Name === 'names')).toMatchObject({ Record: `docker-${netId.slice(0, 12)}` });
    expect((await d.cli(['network', 'ls'])).stdout).toMatch(/\bnames\s+bridge\s+local\s+10\.66\.13\.0\/24/);
    const net = ((await d.cliJson(['network', 'inspect', 'names'])) as any[])[0];
    expect(net.Name).toBe('names');
    expect(Object.values(net.Containers).map((c: any) => c.Name)).toEqual(['web']);

    const metrics = (await topo.inHost('curl', ['-sS', '--fail', `http://127.0.0.1:${METRICS_PORT}/metrics`])).stdout;
    expect(metrics).toContain('bridgeport_published_port_packets_total{network="names",container="web",proto="tcp",host_ip="0.0.0.0",host_port="8094",container_port="80",direction="in"}');
    expect(metrics).toContain('bridgeport_endpoint_packets_total{network="names",container="web",direction="rx"}');
    expect(metrics).not.toContain(rec);

    // On two networks: a record per endpoint, both shown by the container's name, each with its network.
    // Its ports are published once, by the gateway endpoint (ProgramExternalConnectivity), though dockerd
    // sends the port map with the second endpoint too.
    await createNetwork('names2', '10.66.14.0/24');
    await docker(['run', '-d', '--name', 'multi', '--network', 'names', '-p', '8095:80', IMAGE, 'httpd', '-f', '-p', '80', '-h', '/www']);
    await docker(['network', 'connect', 'names2', 'multi']);
    const multi = [await record('multi', 'names'), await record('multi', 'names2')];
    const rows = await eventually(async () => (await ps()).filter((c) => c.Names === 'multi'), (l) => l.length === 2);
    expect(rows.map((c) => [c.Record, c.Networks]).sort()).toEqual([[multi[0], 'names'], [multi[1], 'names2']].sort());
    const both = await d.cli(['port', 'multi']);
    expect([both.exitCode, both.stdout.trim()]).toEqual([0, '80/tcp -> 0.0.0.0:8095']);
    expect((await d.cli(['port', multi[1]!])).stdout.trim()).toBe('');
    const page = `http://${topo.hostIp}:8095/`;
    expect(await curl(topo.inClient, page)).toBe('bridgeport');
    // Disconnecting the second network leaves the port; the first network's endpoint still holds it.
    await docker(['network', 'disconnect', 'names2', 'multi']);
    expect(await curl(topo.inClient, page)).toBe('bridgeport');
    await docker(['network', 'connect', 'names2', 'multi']);
    const several = await eventually(async () => (await d.cli(['inspect', 'multi'])).stderr, (e) => e.includes('several endpoint records'));
    expect(several).toMatch(/container multi has several endpoint records, docker-.*: name one of them/);
    expect((await bpInspect((await record('multi', 'names2'))!)).Name).toBe('/multi');
    await docker(['rm', '-f', 'multi']);
    expect(await curl(topo.inClient, page), 'unpublished with its container').toBeUndefined();

    // dockerd cannot be asked: what is known stays, a new container shows its endpoint ID; logged once.
    await d.stop();
    await d.restart({ args: [...s.daemonArgs, '--docker-host', 'unix:///nonexistent.sock'] });
    await docker(['run', '-d', '--name', 'web2', '--network', 'names', IMAGE, 'sleep', '600']);
    const rec3 = await record('web2', 'names');
    // Asked (and failed) at the start and after the Join, and again while web2 has no name.
    await eventually(async () => d.logs(), (l) => l.includes('cannot ask dockerd at unix:///nonexistent.sock'));
    await sleep(1_500);
    const unasked = await ps();
    expect(unasked.find((c) => c.Record === rec3)?.Names).toBe(rec3);
    expect(unasked.find((c) => c.Record === rec)?.Names).toBe('web');
    expect((await d.cli(['port', 'web'])).stdout.trim()).toBe('80/tcp -> 0.0.0.0:8094');
    expect(d.logs().split('cannot ask dockerd at unix:///nonexistent.sock').length - 1, d.logs()).toBe(1);
    // Asked again at the next start.
    await d.stop();
    await d.restart({ args: s.daemonArgs });
    const named = await eventually(async () => (await ps()).find((c) => c.Record === rec3), (c) => c?.Names === 'web2');
    expect(named?.Names).toBe('web2');

    await docker(['rm', '-f', 'web', 'web2']);
    await docker(['network', 'rm', 'names', 'names2']);
  }, 180_000);
});
