import { spawn } from 'node:child_process';
import { mkdir, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Command, Option } from 'commander';
import { applyRoutes, currentRoutes, hostGwRoutes, KubeApi, podNetworkFor, routeChanges } from '../cni/kubernetes.js';
import { renderConflist } from '../cni/protocol.js';
import { type DaemonFlags, runDaemon, VERSION } from '../daemon/main.js';
import { DEFAULT_DOCKER_HOST } from '../docker/engine.js';
import { BridgeportError } from '../model/errors.js';
import type { PublishedPort } from '../model/state.js';
import { ApiError, Client, ConnectError, DEFAULT_SOCKET } from './client.js';
import { printTable } from './table.js';

const collect = (value: string, previous: string[] = []): string[] => [...previous, value];

// biome-ignore lint/suspicious/noExplicitAny: Docker-shaped JSON documents from the daemon
type Json = Record<string, any>;

function client(program: Command): Client {
  const opts = program.opts<{ host?: string }>();
  return new Client(opts.host ?? process.env.BRIDGEPORT_HOST ?? `unix://${DEFAULT_SOCKET}`);
}

const enc = encodeURIComponent;

function print(json: boolean, data: unknown, table: () => void): void {
  if (json) console.log(JSON.stringify(data, null, 2));
  else table();
}

/** Adds per-second rates (from two samples of /v1/stats) to the second sample's counters. */
export function statsRates(before: Json, now: Json): Json {
  const secs = Math.max((now.Time - before.Time) / 1000, 1e-3);
  const per = (a: Json | undefined, b: Json) => ({
    packets: Math.max(0, (b.packets - (a?.packets ?? b.packets)) / secs),
    bytes: Math.max(0, (b.bytes - (a?.bytes ?? b.bytes)) / secs),
  });
  const epKey = (e: Json) => `${e.Container}/${e.Network}`;
  const portKey = (p: Json) => `${p.Container}/${p.Port}/${p.Host}`;
  const oldEp = new Map<string, Json>(before.Endpoints.map((e: Json) => [epKey(e), e]));
  const oldPort = new Map<string, Json>(before.Ports.map((p: Json) => [portKey(p), p]));
  return {
    Seconds: secs,
    Endpoints: now.Endpoints.map((e: Json) => ({ ...e, RxRate: per(oldEp.get(epKey(e))?.Rx, e.Rx), TxRate: per(oldEp.get(epKey(e))?.Tx, e.Tx) })),
    Ports: now.Ports.map((p: Json) => ({ ...p, InRate: per(oldPort.get(portKey(p))?.In, p.In), OutRate: per(oldPort.get(portKey(p))?.Out, p.Out) })),
  };
}

const rate = (n: number): string => (n >= 100 ? n.toFixed(0) : n.toFixed(1));
function human(bytes: number): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let v = bytes;
  let i = 0;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return `${v >= 100 || i === 0 ? v.toFixed(0) : v.toFixed(1)}${units[i]}`;
}

function boolOption(flag: string, value: string | undefined): boolean | undefined {
  if (value === undefined) return undefined;
  if (value === 'true' || value === '') return true;
  if (value === 'false') return false;
  throw new BridgeportError(`invalid value "${value}" for ${flag}: use true or false`);
}

/** `80/tcp -> 0.0.0.0:49153`, as `docker port` prints. */
function portLines(ports: PublishedPort[], filter?: string): string[] {
  let wanted = ports;
  if (filter) {
    const [port, proto = 'tcp'] = filter.split('/');
    wanted = ports.filter((p) => String(p.containerPort) === port && p.proto === proto);
    if (!wanted.length) throw new BridgeportError(`no public port '${filter}' published`);
  }
  return wanted.map((p) => `${p.containerPort}/${p.proto} -> ${p.hostIp}:${p.hostPort}`);
}

export function buildProgram(): Command {
  const program = new Command('bridgeport')
    .description('Docker-style container networks with an eBPF (or iptables) datapath')
    .version(VERSION)
    .option('-H, --host <address>', `daemon socket (default: $BRIDGEPORT_HOST or unix://${DEFAULT_SOCKET})`)
    .showHelpAfterError();

  program
    .command('daemon')
    .description('run the daemon in the current network namespace')
    .addOption(new Option('--datapath <mode>', 'auto, ebpf or iptables').default('auto'))
    .option('--state-dir <dir>', 'where desired state is kept', '/var/lib/bridgeport')
    .option('--run-dir <dir>', 'socket and sandbox namespaces', '/run/bridgeport')
    .option('--uplink <iface>', 'uplink interface (repeatable; default: the default route interface)', collect, [])
    .option('--bip <cidr>', 'default network "bridge": gateway address and prefix', '172.17.0.1/16')
    .option('--fixed-cidr <cidr>', 'default network: range container addresses are taken from')
    .option('--mtu <bytes>', 'default MTU of networks', '1500')
    .option('--icc <bool>', 'inter-container communication on the default network', 'true')
    .option('--ip <address>', 'default host address published ports bind to', '0.0.0.0')
    .option('--ip-forward <bool>', 'enable net.ipv4.ip_forward', 'true')
    .option('--ephemeral-ports <lo-hi>', "host ports for -P and host port 0 (default: the kernel's ip_local_port_range)")
    .option('--metrics-addr <addr>', 'Prometheus endpoint HOST:PORT, served at /metrics ("" disables it)', '127.0.0.1:9477')
    .option('--bpf-dir <dir>', 'eBPF: per-instance bpffs folder for pinned maps, programs and links (default: <run-dir>/bpf)')
    .option('--masquerade-ports <lo-hi>', 'eBPF: source ports for masquerade, reserved from host sockets', '61000-65535')
    .option('--conntrack-timeouts <list>', 'eBPF: idle timeouts in seconds, e.g. tcp=21600,tcp-syn=60,tcp-closing=10,tcp-time-wait=60,udp=60,icmp=30', '')
    .option('--conntrack-gc-interval <seconds>', 'eBPF: seconds between conntrack garbage collections', '10')
    .option('--xdp-mode <mode>', 'eBPF: where the deny list runs on the uplinks: native or generic XDP, tc (in the tc program), or auto (tc on a veth, else native XDP falling back to generic)', 'auto')
    .option('--docker-plugin <path>', 'serve the Docker network driver "bridgeport" on this unix socket ("" turns it off; default /run/docker/plugins/bridgeport.sock)')
    .option('--docker-host <url>', "dockerd's API: asked for the names of Docker's containers and networks on bridgeport networks (ps, inspect, port, network ls, metrics), and by the reconciler which endpoints it still has", DEFAULT_DOCKER_HOST)
    .option('--docker-reconcile-interval <seconds>', 'seconds between removals of Docker endpoints and networks dockerd is done with (0: only at start)', '30')
    .option('--docker-reconcile-grace <seconds>', 'seconds a Docker endpoint or network must have existed before it may be removed that way', '60')
    .option('--cni-gc-interval <seconds>', 'seconds between passes that do DELs the CNI plugin queued while the daemon was down and forget attachments whose sandbox is gone (0: only at start)', '10')
    .option('--cleanup', "remove every rule, program, map and sysctl change of this instance (both datapaths) and exit")
    .action(async (flags: DaemonFlags) => runDaemon(flags));

  const network = program.command('network').description('manage networks');
  network
    .command('create')
    .argument('<name>')
    .option('--subnet <cidr>')
    .option('--gateway <ip>')
    .option('--ip-range <cidr>')
    .option('--mtu <bytes>')
    .option('--icc <bool>', 'inter-container communication (true|false)')
    .option('--masquerade <bool>', 'masquerade egress traffic (true|false)')
    .option('--internal', 'no traffic in or out of the network')
    .option('--host-binding-ip <ip>', 'default host address for published ports')
    .option('--bridge-name <iface>', 'name of the Linux bridge')
    .option('--routed-cidr <cidr>', 'reached routed both ways: not masqueraded to, and let in directly to every container (repeatable, at most 4; e.g. a cluster pod CIDR)', collect, [])
    .option('-o, --opt <key=value>', 'driver option (com.docker.network.bridge.*, com.docker.network.driver.mtu)', collect, [])
    .action(async (name: string, o: Json) => {
      const options: Record<string, string> = {};
      for (const kv of o.opt as string[]) {
        const i = kv.indexOf('=');
        if (i <= 0) throw new BridgeportError(`invalid option "${kv}": use KEY=VALUE`);
        options[kv.slice(0, i)] = kv.slice(i + 1);
      }
      const mtu = o.mtu === undefined ? undefined : Number(o.mtu);
      if (mtu !== undefined && !Number.isInteger(mtu)) throw new BridgeportError(`invalid --mtu "${o.mtu}"`);
      const net = await client(program).call<Json>('POST', '/v1/networks', {
        name,
        subnet: o.subnet,
        gateway: o.gateway,
        ipRange: o.ipRange,
        mtu,
        icc: boolOption('--icc', o.icc),
        masquerade: boolOption('--masquerade', o.masquerade),
        internal: o.internal,
        hostBindingIp: o.hostBindingIp,
        bridgeName: o.bridgeName,
        ...((o.routedCidr as string[]).length ? { routedCidrs: o.routedCidr } : {}),
        options,
      });
      console.log(net.Id);
    });
  network
    .command('ls')
    .alias('list')
    .option('--json')
    .option('-q, --quiet', 'only names')
    .action(async (o: Json) => {
      const nets = await client(program).call<Json[]>('GET', '/v1/networks');
      if (o.quiet) {
        for (const n of nets) console.log(n.Name);
        return;
      }
      print(o.json, nets, () =>
        printTable(['NETWORK ID', 'NAME', 'DRIVER', 'SCOPE', 'SUBNET', 'BRIDGE'], nets.map((n) => [n.ID, n.Name, n.Driver, n.Scope, n.Subnet, n.Bridge])),
      );
    });
  network
    .command('inspect')
    .argument('<names...>')
    .action(async (names: string[]) => {
      const out = [];
      for (const n of names) out.push(await client(program).call('GET', `/v1/networks/${enc(n)}`));
      console.log(JSON.stringify(out, null, 2));
    });
  network
    .command('rm')
    .alias('remove')
    .argument('<names...>')
    .action(async (names: string[]) => {
      for (const n of names) {
        await client(program).call('DELETE', `/v1/networks/${enc(n)}`);
        console.log(n);
      }
    });

  program
    .command('run')
    .description('create a sandbox, attach it, publish ports and start CMD in it (always in the background)')
    .option('-d, --detach', 'run in the background (always the case; accepted for Docker compatibility)')
    .option('--name <name>')
    .option('--network, --net <net>', 'bridge, a network name, host, none or container:NAME')
    .option('--ip <address>', 'static address on a user network')
    .option('-p, --publish <spec>', 'publish [hostIP:][hostPort[-end]:]containerPort[-end][/proto]', collect, [])
    .option('-P, --publish-all', 'publish every exposed port on an ephemeral host port')
    .option('--expose <port>', 'expose PORT[-END][/PROTO] without publishing', collect, [])
    .option('--link <name:alias>', 'link to another container', collect, [])
    .option('-h, --hostname <name>')
    .option('--json', 'print the inspect document instead of the ID')
    .argument('<cmd...>', 'command and arguments (after --)')
    .action(async (cmd: string[], o: Json) => {
      const c = await client(program).call<Json>('POST', '/v1/containers', {
        name: o.name,
        network: o.net ?? o.network,
        ip: o.ip,
        ports: o.publish,
        publishAll: !!o.publishAll,
        expose: o.expose,
        links: o.link,
        hostname: o.hostname,
        cmd,
      });
      console.log(o.json ? JSON.stringify([c], null, 2) : c.Id);
    });

  program
    .command('exec')
    .description('run a command inside a container, in the foreground')
    .argument('<name>')
    .argument('<cmd...>')
    .action(async (name: string, cmd: string[]) => {
      const c = await client(program).call<Json>('GET', `/v1/containers/${enc(name)}`);
      // Enter the container's own mount and UTS namespaces too when its process runs.
      const argv = c.State.Running
        ? ['--target', String(c.State.Pid), '--net', '--mount', '--uts', '--', ...cmd]
        : [`--net=${c.NetworkSettings.SandboxKey}`, '--', ...cmd];
      const child = spawn('nsenter', argv, { stdio: 'inherit' });
      const code = await new Promise<number>((resolve) => {
        child.on('error', () => resolve(126));
        child.on('exit', (status, signal) => resolve(status ?? (signal ? 128 : 1)));
      });
      process.exitCode = code;
    });

  program
    .command('connect')
    .description('connect a container, or another runtime\'s sandbox (--netns), to a network')
    .argument('<network>')
    .argument('<name>')
    .option('--ip <address>')
    .option('--netns <path>', 'an existing network namespace: /proc/PID/ns/net or /var/run/netns/NAME')
    .action(async (net: string, name: string, o: Json) => {
      await client(program).call('POST', `/v1/networks/${enc(net)}/connect`, { container: name, ip: o.ip, netns: o.netns });
    });
  program
    .command('disconnect')
    .argument('<network>')
    .argument('<name>')
    .action(async (net: string, name: string) => {
      await client(program).call('POST', `/v1/networks/${enc(net)}/disconnect`, { container: name });
    });

  for (const verb of ['publish', 'unpublish'] as const) {
    program
      .command(verb)
      .description(verb === 'publish' ? 'publish more ports of a running container' : 'stop publishing ports')
      .argument('<name>')
      .requiredOption('-p, --publish <spec>', 'port SPEC (repeatable)', collect, [])
      .option('--json')
      .action(async (name: string, o: Json) => {
        const ports = await client(program).call<PublishedPort[]>('POST', `/v1/containers/${enc(name)}/${verb}`, { ports: o.publish });
        print(o.json, ports, () => {
          for (const l of portLines(ports)) console.log(l);
        });
      });
  }

  const firewall = program
    .command('firewall')
    .description("the operator's deny list: sources dropped on the uplinks before anything else (like DOCKER-USER)");
  for (const verb of ['deny', 'allow'] as const) {
    firewall
      .command(verb)
      .description(verb === 'deny' ? 'drop traffic from CIDR (to one port with --port)' : 'remove a deny rule')
      .argument('<cidr>', 'source address or CIDR')
      .option('--port <port>', 'only traffic to this destination port: PORT[/tcp|udp|sctp]')
      .action(async (cidr: string, o: Json) => {
        await client(program).call('POST', `/v1/firewall/${verb}`, { cidr, port: o.port });
      });
  }
  firewall
    .command('ls')
    .description('list deny rules')
    .option('--json')
    .action(async (o: Json) => {
      const rules = await client(program).call<{ cidr: string; proto?: string; port?: number }[]>('GET', '/v1/firewall');
      print(o.json, rules, () => {
        printTable(['SOURCE', 'PORT'], rules.map((r) => [r.cidr, r.port ? `${r.port}/${r.proto}` : 'any']));
      });
    });

  program
    .command('port')
    .description('list published ports, as docker port prints them')
    .argument('<name>')
    .argument('[port]', 'PORT[/PROTO]')
    .option('--json')
    .action(async (name: string, port: string | undefined, o: Json) => {
      const ports = await client(program).call<PublishedPort[]>('GET', `/v1/containers/${enc(name)}/ports`);
      const lines = portLines(ports, port);
      print(o.json, ports, () => {
        for (const l of lines) console.log(l);
      });
    });

  program
    .command('stats')
    .description('live packet and byte rates per container endpoint and published port, like docker stats')
    .argument('[name]', 'only this container')
    .option('--no-stream', 'print one sample (rates over one second) and exit')
    .option('--json', 'one sample as JSON: counters and rates')
    .option('--interval <seconds>', 'seconds between samples', '1')
    .action(async (name: string | undefined, o: Json) => {
      const interval = Number(o.interval);
      if (!(interval > 0)) throw new BridgeportError(`invalid --interval "${o.interval}": must be a positive number of seconds`);
      const path = name ? `/v1/stats?container=${enc(name)}` : '/v1/stats';
      const sample = () => client(program).call<Json>('GET', path);
      let before = await sample();
      for (;;) {
        await new Promise((r) => setTimeout(r, interval * 1000));
        const now = await sample();
        const view = statsRates(before, now);
        if (o.json) {
          console.log(JSON.stringify(view, null, 2));
          return;
        }
        if (o.stream) process.stdout.write('\x1b[2J\x1b[H');
        printTable(
          ['CONTAINER', 'NETWORK', 'RX PKT/S', 'RX B/S', 'TX PKT/S', 'TX B/S', 'RX TOTAL', 'TX TOTAL'],
          view.Endpoints.map((e: Json) => [e.Container, e.Network, rate(e.RxRate.packets), human(e.RxRate.bytes), rate(e.TxRate.packets), human(e.TxRate.bytes), human(e.Rx.bytes), human(e.Tx.bytes)]),
        );
        if (view.Ports.length) {
          console.log('');
          printTable(
            ['CONTAINER', 'PORT', 'HOST', 'IN PKT/S', 'IN B/S', 'OUT PKT/S', 'OUT B/S'],
            view.Ports.map((p: Json) => [p.Container, p.Port, p.Host, rate(p.InRate.packets), human(p.InRate.bytes), rate(p.OutRate.packets), human(p.OutRate.bytes)]),
          );
        }
        if (!o.stream) return;
        before = now;
      }
    });

  program
    .command('ps')
    .alias('ls')
    .option('--json')
    .option('-q, --quiet', 'only IDs')
    .option('-a, --all', 'accepted for Docker compatibility: every container is listed')
    .action(async (o: Json) => {
      const list = await client(program).call<Json[]>('GET', '/v1/containers');
      if (o.quiet) {
        for (const c of list) console.log(c.ID);
        return;
      }
      print(o.json, list, () =>
        printTable(
          ['CONTAINER ID', 'COMMAND', 'STATUS', 'PORTS', 'NAMES', 'NETWORKS'],
          list.map((c) => [c.ID, JSON.stringify(c.Command), c.State, c.Ports, c.Names, c.Networks]),
        ),
      );
    });

  program
    .command('inspect')
    .argument('<names...>')
    .action(async (names: string[]) => {
      const out = [];
      for (const n of names) out.push(await client(program).call('GET', `/v1/containers/${enc(n)}`));
      console.log(JSON.stringify(out, null, 2));
    });

  program
    .command('rm')
    .argument('<names...>')
    .option('-f, --force', 'kill a running container first')
    .action(async (names: string[], o: Json) => {
      for (const n of names) {
        await client(program).call('DELETE', `/v1/containers/${enc(n)}?force=${o.force ? 'true' : 'false'}`);
        console.log(n);
      }
    });
  program
    .command('stop')
    .argument('<names...>')
    .action(async (names: string[]) => {
      for (const n of names) {
        await client(program).call('POST', `/v1/containers/${enc(n)}/stop`);
        console.log(n);
      }
    });

  const cni = program.command('cni').description('the CNI plugin (bridgeport-cni) for podman, containerd and Kubernetes');
  cni
    .command('conflist')
    .description('print (or write) the CNI network configuration list for a bridgeport network')
    .argument('<network>', 'a bridgeport network')
    .option('--name <name>', "the runtime's name of the network (default: the network's name)")
    .option('--write <dir>', 'write it to DIR/05-bridgeport-NAME.conflist (sorting first: containerd reads only the first file)')
    .action(async (network: string, o: Json) => {
      const { text, name } = await conflistOf(client(program), network, o.name);
      if (!o.write) process.stdout.write(text);
      else console.log(await writeConflist(o.write, name, text));
    });

  cni
    .command('kube-node')
    .description("a Kubernetes node's pod network (contrib/kubernetes): from the Node object, host-gw routes to the other nodes' pod CIDRs, the conflist once the network is ready")
    .requiredOption('--cluster-cidr <cidr>', "the cluster's pod CIDR (routed, not masqueraded)")
    .option('--node <name>', 'this node (default: $NODE_NAME)')
    .option('--network <name>', 'the bridgeport network of the pods', 'pods')
    .option('--bridge-name <iface>', 'its bridge', 'bp-pods')
    .option('--mtu <bytes>', "the pod network's MTU")
    .option('--conflist-dir <dir>', 'where the runtime reads CNI configurations', '/etc/cni/net.d')
    .option('--interval <seconds>', 'seconds between route updates from the Node list', '10')
    .option('--kube-api <url>', 'the API server (default: in-cluster, from KUBERNETES_SERVICE_HOST)')
    .option('--kube-token-file <path>', 'bearer token (default: the pod service account\'s)')
    .option('--kube-ca-file <path>', "the API server's CA (default: the pod service account's)")
    .action(async (o: Json) => runKubeNode(client(program), o));

  program
    .command('status')
    .option('--json')
    .action(async (o: Json) => {
      const s = await client(program).call<Json>('GET', '/v1/status');
      print(o.json, s, () => {
        for (const [k, v] of Object.entries(s)) console.log(`${k}: ${typeof v === 'object' ? JSON.stringify(v) : v}`);
      });
    });

  return program;
}

/** The conflist for a network, named `name` (default the network's own name). */
async function conflistOf(c: Client, network: string, name?: string): Promise<{ text: string; name: string }> {
  const net = await c.call<Json>('GET', `/v1/networks/${enc(network)}`);
  const status = await c.call<Json>('GET', '/v1/status');
  const listName = name ?? net.Name;
  const conf = renderConflist({ name: listName, network: net.Name, socket: status.Socket === DEFAULT_SOCKET ? undefined : status.Socket });
  return { text: `${JSON.stringify(conf, null, 2)}\n`, name: listName };
}

/** Writes DIR/05-bridgeport-NAME.conflist whole or not at all: a runtime reading the folder never sees half a file. */
async function writeConflist(dir: string, name: string, text: string): Promise<string> {
  const file = path.join(dir, `05-bridgeport-${name}.conflist`);
  await mkdir(dir, { recursive: true });
  const tmp = path.join(dir, `.05-bridgeport-${name}.tmp-${process.pid}`);
  await writeFile(tmp, text);
  await rename(tmp, file);
  return file;
}

const log = (msg: string): void => console.error(`${new Date().toISOString()} ${msg}`);
const pause = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * `cni kube-node`: waits for the daemon, makes (or checks) the node's pod
 * network from its Node object, writes the conflist only then (the kubelet
 * keeps the node NotReady until one exists), and keeps host-gw routes to the
 * other nodes' pod CIDRs in step with the Node list until SIGTERM.
 */
async function runKubeNode(c: Client, o: Json): Promise<void> {
  const nodeName: string | undefined = o.node ?? process.env.NODE_NAME;
  if (!nodeName) throw new BridgeportError('cni kube-node: give --node NAME (or set NODE_NAME, e.g. from the downward API)');
  const intervalS = Number(o.interval);
  if (!Number.isFinite(intervalS) || intervalS <= 0) throw new BridgeportError(`invalid --interval "${o.interval}": a positive number of seconds`);
  const mtu = o.mtu === undefined ? undefined : Number(o.mtu);
  const api = KubeApi.inCluster({ server: o.kubeApi, tokenFile: o.kubeTokenFile, caFile: o.kubeCaFile });
  for (let i = 0; ; i++) {
    try {
      await c.call('GET', '/v1/status');
      break;
    } catch (err) {
      if (!(err instanceof ConnectError)) throw err;
      if (i % 20 === 0) log(`cni kube-node: waiting for the daemon at ${c.host}`);
      await pause(500);
    }
  }
  const self = (await api.nodes()).find((n) => n.name === nodeName);
  if (!self) throw new BridgeportError(`cni kube-node: the API server has no node ${nodeName}`);
  const want = podNetworkFor(self, { network: o.network, clusterCidr: o.clusterCidr, bridge: o.bridgeName, mtu });
  let net: Json | undefined;
  try {
    net = await c.call<Json>('GET', `/v1/networks/${enc(want.name)}`);
  } catch (err) {
    if (!(err instanceof ApiError && err.status === 404)) throw err;
  }
  if (!net) {
    net = await c.call<Json>('POST', '/v1/networks', want);
    log(`cni kube-node: network ${want.name} created: ${want.subnet}, routed ${want.routedCidrs!.join(', ')}`);
  } else {
    const subnet = net.IPAM?.Config?.[0]?.Subnet;
    const routed = (net.RoutedCIDRs ?? []).join(',');
    if (subnet !== want.subnet || routed !== want.routedCidrs!.join(',')) {
      throw new BridgeportError(
        `cni kube-node: network ${want.name} has subnet ${subnet} and routed CIDRs [${routed}], the node wants ${want.subnet} and [${want.routedCidrs!.join(',')}]: remove it (its pods first) or name another --network`,
      );
    }
  }
  const { text, name } = await conflistOf(c, want.name);
  log(`cni kube-node: wrote ${await writeConflist(o.conflistDir, name, text)}`);
  let stopped = false;
  process.once('SIGTERM', () => {
    stopped = true;
  });
  while (!stopped) {
    try {
      const changes = routeChanges(await currentRoutes(), hostGwRoutes(await api.nodes(), nodeName));
      await applyRoutes(changes);
      for (const r of changes.replace) log(`cni kube-node: route ${r.dst} via ${r.via}`);
      for (const r of changes.remove) log(`cni kube-node: route ${r.dst} removed (its node is gone)`);
    } catch (err) {
      log(`cni kube-node: ${err instanceof Error ? err.message : String(err)}`);
    }
    for (let waited = 0; waited < intervalS * 1000 && !stopped; waited += 200) await pause(200);
  }
}

export async function main(argv: string[]): Promise<void> {
  try {
    await buildProgram().parseAsync(argv);
  } catch (err) {
    if (err instanceof ApiError) console.error(`Error response from daemon: ${err.message}`);
    else if (err instanceof ConnectError || err instanceof BridgeportError) console.error(`Error: ${err.message}`);
    else console.error(err instanceof Error ? (err.stack ?? err.message) : String(err));
    process.exitCode = 1;
  }
}
