import { mkdir, readdir, readFile, rmdir } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeEach, expect, it } from 'vitest';
import { DATAPATHS, describePriv } from '../helpers/privileged.js';
import { type Env, fails, ok, probe, runEcho, useDaemon } from '../helpers/scenario.js';
import { REPO_ROOT, runCommand } from '../helpers/topology.js';
import { startEchoServer } from '../helpers/traffic.js';

/** Everything an operation could change: stored state, listings, rules, links, sandboxes. */
async function snapshot({ topo, d }: Env): Promise<Record<string, unknown>> {
  const save = (await topo.inHost('iptables-save', [])).stdout;
  return {
    state: await readFile(join(d.stateDir, 'state.json'), 'utf8'),
    networks: await d.cliJson(['network', 'ls', '--json']),
    containers: await d.cliJson(['ps', '--json']),
    rules: save.split('\n').filter((l) => !l.startsWith('#')),
    // Names and addresses, not operstate: a new bridge turns UP a moment after it is made.
    links: JSON.parse((await topo.inHost('ip', ['-json', 'link', 'show'])).stdout).map((l: any) => `${l.ifname} ${l.master ?? ''}`),
    addresses: JSON.parse((await topo.inHost('ip', ['-json', '-4', 'addr', 'show'])).stdout).flatMap((l: any) =>
      l.addr_info.map((a: any) => `${l.ifname} ${a.local}/${a.prefixlen}`),
    ),
    sandboxes: await readdir(join(d.runDir, 'netns')),
  };
}

/** Runs fn while a directory stands where the daemon writes the file `path`, so that write fails. */
async function blocked(path: string, fn: () => Promise<void>): Promise<void> {
  await mkdir(path);
  try {
    await fn();
  } finally {
    await rmdir(path);
  }
}

describePriv.each(DATAPATHS)('bad input is refused and changes nothing (%s)', (datapath) => {
  const env = useDaemon(datapath, ['--ephemeral-ports', '40000-40099']);

  beforeEach(async () => {
    const { d } = env();
    await ok(d, ['network', 'create', 'used', '--subnet', '172.28.0.0/24']);
    await runEcho(d, 'web', { network: 'used', flags: ['-p', '8080:80', '-p', '127.0.0.1:8081:80'] });
  });

  const cases: [string, string[], RegExp][] = [
    ['malformed SPEC', ['run', '-d', '--name', 'x', '-p', '80:80:80:80', '--', 'sleep', '9'], /80:80:80:80.*too many colons/],
    ['non-numeric port', ['publish', 'web', '-p', 'http:80'], /host port "http" is not a decimal number/],
    ['port 0', ['run', '-d', '--name', 'x', '-p', '0:80', '--', 'sleep', '9'], /host port 0 is out of range 1-65535/],
    ['port 65536', ['publish', 'web', '-p', '65536:80'], /65536/],
    ['unknown protocol', ['publish', 'web', '-p', '8082:80/icmp'], /icmp/],
    ['host port already published', ['run', '-d', '--name', 'x', '-p', '8080:80', '--', 'sleep', '9'], /8080\/tcp.*already published/],
    ['host port published on 0.0.0.0 taken for one address', ['publish', 'web', '-p', '198.18.0.1:8080:81'], /8080\/tcp.*already published/],
    ['range length mismatch', ['publish', 'web', '-p', '8000-8002:80-81'], /port range mismatch: host 8000-8002 \(3 ports\) vs container 80-81 \(2 ports\)/],
    ['overlapping subnet', ['network', 'create', 'n2', '--subnet', '172.28.0.128/25'], /overlaps network used/],
    ['invalid subnet', ['network', 'create', 'n2', '--subnet', '172.28.300.0/24'], /172\.28\.300\.0/],
    ['subnet with host bits', ['network', 'create', 'n2', '--subnet', '172.27.0.1/16'], /host bits/],
    ['gateway outside subnet', ['network', 'create', 'n2', '--subnet', '172.27.0.0/24', '--gateway', '172.26.0.1'], /gateway 172\.26\.0\.1 is outside subnet/],
    ['--ip outside the subnet', ['run', '-d', '--name', 'x', '--network', 'used', '--ip', '10.9.9.9', '--', 'sleep', '9'], /10\.9\.9\.9 is outside/],
    ['--ip in use', ['run', '-d', '--name', 'x', '--network', 'used', '--ip', '172.28.0.2', '--', 'sleep', '9'], /172\.28\.0\.2 is already in use/],
    ['duplicate network name', ['network', 'create', 'used'], /used already exists/],
    ['duplicate container name', ['run', '-d', '--name', 'web', '--', 'sleep', '9'], /web is already in use/],
    ['invalid container name', ['run', '-d', '--name', 'bad name', '--', 'sleep', '9'], /invalid container name "bad name"/],
    ['invalid network name', ['network', 'create', 'bad/name'], /invalid network name/],
    ['bridge name longer than 15 bytes', ['network', 'create', 'n2', '--bridge-name', 'a-very-long-bridge'], /15 bytes/],
    ['unknown network', ['run', '-d', '--name', 'x', '--network', 'nope', '--', 'sleep', '9'], /network nope not found/],
    ['unknown container', ['rm', '-f', 'nope'], /no such container: nope/],
    ['connect an unknown container', ['connect', 'used', 'nope'], /no such container: nope/],
    ['network rm of a network in use', ['network', 'rm', 'used'], /active endpoints \(web\)/],
    ['--internal with -p', ['run', '-d', '--name', 'x', '--network', 'vault', '-p', '8090:80', '--', 'sleep', '9'], /internal/],
    ['--link to an unknown container', ['run', '-d', '--name', 'x', '--network', 'used', '--link', 'ghost:db', '--', 'sleep', '9'], /ghost/],
    ['unpublish of a port not published', ['unpublish', 'web', '-p', '9999:80'], /not published/],
    ['missing executable', ['run', '-d', '--name', 'x', '--', 'no-such-binary-here'], /executable file not found.*no-such-binary-here/],
    ['connect twice', ['connect', 'used', 'web'], /already exists in network used/],
    ['removing the default network', ['network', 'rm', 'bridge'], /pre-defined/],
    ['unsupported -o option', ['network', 'create', 'n2', '-o', 'com.docker.network.bridge.bogus=1'], /bogus/],
  ];

  it.each(cases)('%s', async (_what, args, message) => {
    const e = env();
    if (args.includes('vault')) await ok(e.d, ['network', 'create', 'vault', '--internal']);
    const before = await snapshot(e);
    const stderr = await fails(e.d, args);
    expect(stderr).toMatch(message);
    expect(await snapshot(e)).toEqual(before);
  });

  it('a host port a host process listens on is refused; -P skips it', async () => {
    const e = env();
    const server = await startEchoServer(e.topo.hostNsPath, ['tcp:40000']);
    try {
      const before = await snapshot(e);
      expect(await fails(e.d, ['publish', 'web', '-p', '40000:80'])).toMatch(/host port 40000\/tcp is in use by a process on the host/);
      expect(await snapshot(e)).toEqual(before);
      await ok(e.d, ['run', '-d', '--name', 'eph', '--network', 'used', '--expose', '80', '-P', '--', 'sleep', '3018']);
      const ports = (await e.d.cliJson(['port', 'eph', '--json'])) as { hostPort: number }[];
      expect(ports.map((p) => p.hostPort)).toEqual([40001]);
    } finally {
      await server.stop();
    }
  });

  it('a failure at the last step rolls back everything the operation did', async () => {
    const e = env();
    const before = await snapshot(e);
    // Saving the state is the last step of every operation: make it fail.
    await blocked(join(e.d.stateDir, 'state.json.tmp'), async () => {
      const stderr = await fails(e.d, ['run', '-d', '--name', 'late', '--network', 'used', '-p', '8085:80', '--', 'sleep', '3017']);
      expect(stderr).toMatch(/run late: .*state\.json\.tmp/);
    });
    expect(await snapshot(e)).toEqual(before);
    const leftovers = (await runCommand(['pgrep', '-f', 'sleep 3017'])).stdout.trim();
    expect(leftovers, 'the container process was killed').toBe('');
    // The same operation works once the obstacle is gone.
    await ok(e.d, ['run', '-d', '--name', 'late', '--network', 'used', '-p', '8085:80', '--', 'sleep', '3017']);
    await ok(e.d, ['rm', '-f', 'late']);
  });

  it('a port change whose journal cannot be written is rolled back, datapath included', async () => {
    const e = env();
    const before = await snapshot(e);
    await blocked(join(e.d.stateDir, 'state.journal'), async () => {
      const stderr = await fails(e.d, ['publish', 'web', '-p', '8086:80']);
      expect(stderr).toMatch(/publish web: .*state\.journal/);
      const unpublish = await fails(e.d, ['unpublish', 'web', '-p', '8080:80']);
      expect(unpublish).toMatch(/unpublish web: .*state\.journal/);
    });
    expect(await snapshot(e)).toEqual(before);
    expect((await probe(e.topo.inClient, 'tcp', e.topo.hostIp, 8086)).ok, 'the refused port is not forwarded').toBe(false);
    expect((await probe(e.topo.inClient, 'tcp', e.topo.hostIp, 8080)).ok, 'the port kept is still forwarded').toBe(true);
    await ok(e.d, ['publish', 'web', '-p', '8086:80']);
    expect((await probe(e.topo.inClient, 'tcp', e.topo.hostIp, 8086)).ok).toBe(true);
  });

  it('an unknown datapath and malformed daemon flags are refused', async () => {
    const { topo, d } = env();
    for (const [flags, message] of [
      [['--datapath', 'xdp'], /invalid --datapath "xdp"/],
      [['--bip', '172.16.0.1/33'], /prefix length 33/],
      [['--ephemeral-ports', '5000-4000'], /invalid --ephemeral-ports "5000-4000"/],
      [['--uplink', 'nosuch0'], /--uplink nosuch0: no such interface/],
    ] as const) {
      const r = await topo.inHost('node', [
        join(REPO_ROOT, 'bin', 'bridgeport'),
        'daemon',
        ...flags,
        '--state-dir',
        `${d.stateDir}-2`,
        '--run-dir',
        `${d.runDir}-2`,
      ]);
      expect(r.exitCode).not.toBe(0);
      expect(r.stderr).toMatch(message);
    }
  });
});
