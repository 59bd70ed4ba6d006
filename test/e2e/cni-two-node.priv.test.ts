import { afterAll, beforeAll, expect, it } from 'vitest';
import { cniCall, makeSandbox } from '../helpers/cni.js';
import { DATAPATHS, describePriv } from '../helpers/privileged.js';
import { createTopology, type DaemonHandle, runCommand, type Topology } from '../helpers/topology.js';
import { type EchoServer, probe, startEchoServer } from '../helpers/traffic.js';

/**
 * Two Kubernetes-style nodes on bridgeport, as a cluster would run it but
 * without a cluster: two "node" namespaces (each the host namespace of a test
 * topology, with its own uplink to its own client) joined by an underlay
 * veth; a bridgeport daemon on each with its own pod subnet out of the
 * cluster CIDR, that CIDR routed (not masqueraded, let in), and a host-gw
 * route to the other node's pod subnet; pod sandboxes attached through
 * bridgeport-cni with the CNI_ARGS the kubelet sends.
 */
const CLUSTER_CIDR = '10.244.0.0/16';
const NODES = [
  { podCidr: '10.244.1.0/24', underlay: '192.168.77.1' },
  { podCidr: '10.244.2.0/24', underlay: '192.168.77.2' },
] as const;

describePriv.each(DATAPATHS)('two nodes, pods attached through bridgeport-cni (%s)', (datapath) => {
  const topos: Topology[] = [];
  const daemons: DaemonHandle[] = [];
  const pods: { ip: string; sandbox: string; remove: () => Promise<void> }[] = [];
  const servers: EchoServer[] = [];

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
      const other = NODES[1 - i]!;
      // host-gw: the other node's pod subnet via its underlay address.
      await must(i, 'ip', ['route', 'add', other.podCidr, 'via', other.underlay, 'dev', 'under0']);
      daemons.push(await topos[i]!.startDaemon({ datapath, args: ['--uplink', 'under0', '--cni-gc-interval', '0'] }));
    }
    for (const [i, node] of NODES.entries()) {
      const sb = await makeSandbox(topos[i]!.workDir, `pod${i}`);
      const add = await cniCall(topos[i]!.hostNsPath, {
        command: 'ADD',
        containerId: `pod${i}-infra`,
        netns: sb.path,
        ifname: 'eth0',
        args: `IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=pod${i};K8S_POD_INFRA_CONTAINER_ID=pod${i}-infra`,
        config: {
          cniVersion: '1.0.0',
          name: 'k8s-pod-network',
          type: 'bridgeport',
          socket: daemons[i]!.socket,
          network: 'pods',
          subnet: node.podCidr,
          routedCidrs: [CLUSTER_CIDR],
          runtimeConfig: { portMappings: i === 0 ? [{ HostPort: 8080, ContainerPort: 80, Protocol: 'TCP' }] : [] },
        },
      });
      if (add.exitCode !== 0) throw new Error(`ADD on node ${i}: ${add.stdout}${add.stderr}\n${daemons[i]!.logs().slice(-3000)}`);
      pods.push({ ip: add.json.ips[0].address.split('/')[0], sandbox: sb.path, remove: sb.remove });
      servers.push(await startEchoServer(sb.path, ['tcp:80']));
    }
  }, 120_000);

  afterAll(async () => {
    const errors: unknown[] = [];
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
});
