import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { execa, type ResultPromise } from 'execa';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { cniCall, makeSandbox } from '../helpers/cni.js';
import { DATAPATHS, describePriv } from '../helpers/privileged.js';
import { createTopology, type DaemonHandle, REPO_ROOT, runCommand, type Topology } from '../helpers/topology.js';
import { type EchoServer, probe, startEchoServer } from '../helpers/traffic.js';

/**
 * Two Kubernetes-style nodes on bridgeport, as a cluster would run it but
 * without a cluster: two "node" namespaces (each the host namespace of a test
 * topology, with its own uplink to its own client) joined by an underlay
 * veth; on each a bridgeport daemon and `bridgeport cni kube-node`, which
 * reads the Node list from an API server (a stand-in, test/fixtures/fake-kube-api.mjs,
 * on node 0's underlay address: no Kubernetes runs here), makes the node's
 * pod network from its pod CIDR with the cluster CIDR routed, writes the
 * conflist and keeps host-gw routes to the other node's pod CIDR; pod
 * sandboxes attached through bridgeport-cni with that conflist and the
 * CNI_ARGS the kubelet sends.
 */
const CLUSTER_CIDR = '10.244.0.0/16';
const NODES = [
  { name: 'node-0', podCidr: '10.244.1.0/24', underlay: '192.168.77.1' },
  { name: 'node-1', podCidr: '10.244.2.0/24', underlay: '192.168.77.2' },
] as const;
const TOKEN = 'bridgeport-test-token';
const nodeObject = (n: (typeof NODES)[number]) => ({
  metadata: { name: n.name },
  spec: { podCIDR: n.podCidr, podCIDRs: [n.podCidr, 'fd00:10:244::/64'] },
  status: { addresses: [{ type: 'InternalIP', address: n.underlay }, { type: 'Hostname', address: n.name }] },
});
const BRIDGEPORT = path.join(REPO_ROOT, 'bin', 'bridgeport');
const FAKE_API = path.join(REPO_ROOT, 'test', 'fixtures', 'fake-kube-api.mjs');

describePriv.each(DATAPATHS)('two nodes, pods attached through bridgeport-cni (%s)', (datapath) => {
  const topos: Topology[] = [];
  const daemons: DaemonHandle[] = [];
  const pods: { ip: string; sandbox: string; remove: () => Promise<void> }[] = [];
  const servers: EchoServer[] = [];
  const agents: ResultPromise[] = [];
  const agentLogs: string[] = [];
  let api: ResultPromise | undefined;
  const nodesFile = () => path.join(topos[0]!.workDir, 'nodes.json');

  const inNode = (i: number, cmd: string, args: string[]) => topos[i]!.inHost(cmd, args);
  const must = async (i: number, cmd: string, args: string[]) => {
    const r = await inNode(i, cmd, args);
    if (r.exitCode !== 0) throw new Error(`node ${i}: ${cmd} ${args.join(' ')}: ${r.stderr}`);
  };
  const inPod = (i: number) => (cmd: string, args: string[]) => runCommand(['nsenter', `--net=${pods[i]!.sandbox}`, '--', cmd, ...args]);

  beforeAll(async () => {
    for (let i = 0; i < 2; i++) topos.push(await createTopology());
    // The underlay: one veth from node 0's namespace into node 1's.
    await must(0, 'ip', ['link', 'add', 'under0', 'type', 'veth', 'peer', 'name', 'under0', 'netns', topos[1]!.hostNsPath]);
    for (const [i, node] of NODES.entries()) {
      await must(i, 'ip', ['addr', 'add', `${node.underlay}/24`, 'dev', 'under0']);
      await must(i, 'ip', ['link', 'set', 'under0', 'up']);
      daemons.push(await topos[i]!.startDaemon({ datapath, args: ['--uplink', 'under0', '--cni-gc-interval', '0'] }));
    }
    const work = topos[0]!.workDir;
    await writeFile(nodesFile(), JSON.stringify({ kind: 'NodeList', items: NODES.map(nodeObject) }));
    await writeFile(path.join(work, 'token'), `${TOKEN}\n`);
    api = execa('nsenter', [`--net=${topos[0]!.hostNsPath}`, '--', process.execPath, FAKE_API, NODES[0].underlay, '6443', nodesFile(), TOKEN], { reject: false, buffer: false });
    await waitForLine(api, /listening/, 'fake API server');
    for (const [i, node] of NODES.entries()) {
      const args = [
        `--net=${topos[i]!.hostNsPath}`, '--', process.execPath, BRIDGEPORT, '-H', `unix://${daemons[i]!.socket}`,
        'cni', 'kube-node', '--node', node.name, '--cluster-cidr', CLUSTER_CIDR, '--conflist-dir', path.join(topos[i]!.workDir, 'net.d'),
        '--interval', '1', '--kube-api', `http://${NODES[0].underlay}:6443`, '--kube-token-file', path.join(work, 'token'),
      ];
      const agent = execa('nsenter', args, { reject: false, all: true, buffer: false });
      agentLogs.push('');
      agent.all?.on('data', (d: Buffer) => {
        agentLogs[i] += d.toString();
      });
      agents.push(agent);
    }
    for (const [i, node] of NODES.entries()) {
      const conflist = path.join(topos[i]!.workDir, 'net.d', '05-bridgeport-pods.conflist');
      await until(async () => existsSync(conflist), 20_000, () => `node ${i}'s agent wrote no conflist:\n${agentLogs[i]}`);
      // The runtime's way: the plugin's entry of the list, with the list's name and version.
      const list = JSON.parse(await readFile(conflist, 'utf8'));
      const sb = await makeSandbox(topos[i]!.workDir, `pod${i}`);
      const add = await cniCall(topos[i]!.hostNsPath, {
        command: 'ADD',
        containerId: `pod${i}-infra`,
        netns: sb.path,
        ifname: 'eth0',
        args: `IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=pod${i};K8S_POD_INFRA_CONTAINER_ID=pod${i}-infra`,
        config: {
          ...list.plugins[0],
          name: list.name,
          cniVersion: list.cniVersion,
          runtimeConfig: { portMappings: i === 0 ? [{ HostPort: 8080, ContainerPort: 80, Protocol: 'TCP' }] : [] },
        },
      });
      if (add.exitCode !== 0) throw new Error(`ADD on node ${i}: ${add.stdout}${add.stderr}\n${daemons[i]!.logs().slice(-3000)}`);
      expect(add.json.ips[0].address).toMatch(new RegExp(`^${node.podCidr.split('.').slice(0, 3).join('\\.')}\\.`));
      pods.push({ ip: add.json.ips[0].address.split('/')[0], sandbox: sb.path, remove: sb.remove });
      servers.push(await startEchoServer(sb.path, ['tcp:80']));
    }
    // Each agent routes the other node's pod CIDR via its underlay address.
    for (const [i] of NODES.entries()) {
      const other = NODES[1 - i]!;
      const want = `${other.podCidr} via ${other.underlay}`;
      await until(async () => (await inNode(i, 'ip', ['route', 'show', 'proto', '247'])).stdout.includes(want), 10_000, () => `node ${i}: no route ${want}:\n${agentLogs[i]}`);
    }
  }, 120_000);

  afterAll(async () => {
    const errors: unknown[] = [];
    for (const p of [...agents, ...(api ? [api] : [])]) {
      p.kill('SIGTERM');
      await p;
    }
    for (const s of servers) await s.stop().catch((e: unknown) => errors.push(e));
    for (const p of pods) await p.remove().catch((e: unknown) => errors.push(e));
    for (const t of topos) await t.cleanup().catch((e: unknown) => errors.push(e));
    if (errors.length) throw new AggregateError(errors, errors.map(String).join('; '));
  }, 120_000);

  it('pod to pod across nodes, both ways, with their real addresses', async () => {
    expect(pods[0]!.ip).toMatch(/^10\.244\.1\./);
    expect(pods[1]!.ip).toMatch(/^10\.244\.2\./);
    for (const [from, to] of [
      [0, 1],
      [1, 0],
    ] as const) {
      const r = await probe(inPod(from), 'tcp', pods[to]!.ip, 80);
      expect(r.ok, `pod${from} -> pod${to}: ${r.error}\n${daemons[from]!.logs().slice(-2000)}`).toBe(true);
      expect(r.peer?.split(':')[0]).toBe(pods[from]!.ip);
      expect(r.local).toBe(`${pods[to]!.ip}:80`);
    }
  });

  it('pod to outside: masqueraded to the node address; a published port answers the node\'s client', async () => {
    const topo = topos[0]!;
    const outside = await startEchoServer(topo.clientNsPath, ['tcp:9000']);
    try {
      const r = await probe(inPod(0), 'tcp', topo.clientIp, 9000);
      expect(r.ok, r.error).toBe(true);
      expect(r.peer?.split(':')[0]).toBe(topo.hostIp);
    } finally {
      await outside.stop();
    }
    const p = await probe(topo.inClient, 'tcp', topo.hostIp, 8080);
    expect(p.ok, p.error).toBe(true);
    expect(p.peer?.split(':')[0]).toBe(topo.clientIp);
    expect(p.local).toBe(`${pods[0]!.ip}:80`);
  });

  it('from outside the cluster CIDR, a pod address is still not reachable directly', async () => {
    const topo = topos[0]!;
    const route = await topo.inClient('ip', ['route', 'add', NODES[0].podCidr, 'via', topo.hostIp]);
    expect(route.exitCode, route.stderr).toBe(0);
    try {
      expect((await probe(topo.inClient, 'tcp', pods[0]!.ip, 80, { timeoutMs: 700 })).ok).toBe(false);
    } finally {
      await topo.inClient('ip', ['route', 'del', NODES[0].podCidr]);
    }
  });

  it("the agent follows the Node list: a node gone takes its route with it, back again brings it back", async () => {
    await writeFile(nodesFile(), JSON.stringify({ kind: 'NodeList', items: [nodeObject(NODES[0])] }));
    await expect.poll(async () => (await inNode(0, 'ip', ['route', 'show', 'proto', '247'])).stdout.trim(), { timeout: 10_000 }).toBe('');
    // The agent logs a change after making it: the line may come a moment after the route went.
    await expect.poll(() => agentLogs[0], { timeout: 5_000 }).toMatch(/route 10\.244\.2\.0\/24 removed/);
    await writeFile(nodesFile(), JSON.stringify({ kind: 'NodeList', items: NODES.map(nodeObject) }));
    await expect.poll(async () => (await inNode(0, 'ip', ['route', 'show', 'proto', '247'])).stdout, { timeout: 10_000 }).toMatch(/10\.244\.2\.0\/24 via 192\.168\.77\.2/);
    expect((await probe(inPod(0), 'tcp', pods[1]!.ip, 80)).ok).toBe(true);
  });
});

/** Resolves once `check` holds, polling; throws `message()` after `ms`. */
async function until(check: () => Promise<boolean>, ms: number, message: () => string): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(message());
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Resolves once the process printed a line matching `re` (10 s at most). */
async function waitForLine(p: ResultPromise, re: RegExp, what: string): Promise<void> {
  let out = '';
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${what}: nothing matching ${re} in 10 s: ${out}`)), 10_000);
    const on = (d: Buffer) => {
      out += d.toString();
      if (re.test(out)) {
        clearTimeout(timer);
        resolve();
      }
    };
    p.stdout?.on('data', on);
    p.stderr?.on('data', on);
    void p.then(() => reject(new Error(`${what} ended: ${out}`)));
  });
}
