import { expect, it } from 'vitest';
import { IMAGE, useDockerScenario } from '../helpers/dockerd.js';
import { DATAPATHS, describePriv } from '../helpers/privileged.js';
import { installed, probe } from '../helpers/scenario.js';
import { daemonLogs } from '../helpers/topology.js';

/**
 * dockerd and bridgeport restarting under each other: one dockerd and one
 * bridgeport daemon per datapath (useDockerScenario), dockerd restarted
 * with and without --live-restore, killed, and bridgeport stopped while
 * dockerd removes a container. The reconciler runs every second here, with a
 * grace of GRACE_S seconds, so that what it removes (and what it must not)
 * shows within a scenario.
 */
const GRACE_S = 5;
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

describePriv.each(DATAPATHS)('docker restarts and the reconciler (%s)', (datapath) => {
  const s = useDockerScenario({
    what: 'docker restart',
    datapath,
    daemonArgs: (dk) => [
      '--docker-plugin', dk.pluginSocket, '--docker-host', dk.apiHost,
      '--docker-reconcile-interval', '1', '--docker-reconcile-grace', String(GRACE_S),
      '--ephemeral-ports', '40100-40199',
    ],
  });
  const { env, fail, docker } = s;
  const runEcho = (name: string, network: string, flags: string[] = []) => s.runEcho(name, network, flags, ['tcp:80']);

  /** The bridgeport record of a container's endpoint and its host-side veth. */
  const endpointOf = async (name: string, network: string) => {
    const id = await docker(['inspect', name, '--format', `{{(index .NetworkSettings.Networks "${network}").EndpointID}}`]);
    const rec = `docker-${id.slice(0, 12)}`;
    const info = ((await s.d.cliJson(['inspect', rec])) as any[])[0];
    return { rec, hostIf: (Object.values(info.NetworkSettings.Networks)[0] as any).HostInterfaceName as string };
  };

  const dockerRecords = async (): Promise<string[]> =>
    ((await s.d.cliJson(['ps', '--json'])) as any[]).map((c) => (c.Record ?? c.Names) as string).filter((n) => n.startsWith('docker-'));
  const veths = async (): Promise<string[]> =>
    (await s.topo.inHost('ip', ['-o', 'link', 'show', 'type', 'veth'])).stdout
      .split('\n')
      .filter(Boolean)
      .map((l) => l.split(':')[1]!.trim().split('@')[0]!)
      .sort();
  const answers = async (port: number): Promise<boolean> => (await probe(s.topo.inClient, 'tcp', s.topo.hostIp, port)).ok;

  /** Polls `check` until it holds, up to `ms`; returns how long it took. */
  const until = async (what: string, check: () => Promise<boolean>, ms = 20_000): Promise<number> => {
    const t0 = Date.now();
    while (!(await check())) {
      if (Date.now() - t0 > ms) fail(`not within ${ms} ms: ${what}`);
      await sleep(250);
    }
    return Date.now() - t0;
  };

  /**
   * A network's map entry without the bridge's MAC: a bridge with no address of its own takes the
   * lowest of its ports', so the MAC changes as endpoints come and go (layout: struct bp_network).
   */
  const withoutBridgeMac = (line: string): string => {
    const [map, key, value] = line.split(' ');
    return map === 'bp_networks' ? `${map} ${key} ${value!.slice(0, 32)}` : line;
  };

  /** The datapath's rules and map entries and the host's veths: taken with no Docker endpoint, compared after. */
  const snapshot = async () => ({ rules: (await installed(s.topo, s.d)).map(withoutBridgeMac), veths: await veths() });

  /** What is left of Docker's endpoints: records, veths (either end) and rules or map entries not in `before`; '' when nothing. */
  const leftOver = async (before: { rules: string[]; veths: string[] }): Promise<string> => {
    const rules = (await installed(s.topo, s.d)).map(withoutBridgeMac);
    return [
      ...(await dockerRecords()).map((r) => `record ${r}`),
      ...(await veths()).filter((l) => !before.veths.includes(l)).map((l) => `veth ${l}`),
      ...rules.filter((l) => !before.rules.includes(l)).map((l) => `added: ${l}`),
      ...before.rules.filter((l) => !rules.includes(l)).map((l) => `missing: ${l}`),
    ].join('\n');
  };
  const nothingLeft = async (before: { rules: string[]; veths: string[] }): Promise<boolean> => (await leftOver(before)) === '';

  /** The reconciler's log line for removing `rec`, if it did. */
  const reapedLine = (rec: string): string | undefined =>
    daemonLogs(s.topo)
      .split('\n')
      .find((l) => l.includes(`docker reconcile: removed endpoint ${rec}`));
  const reaped = (rec: string): boolean => reapedLine(rec) !== undefined;

  it('dockerd restart with --live-restore: the published port answers throughout, the endpoint stays, docker rm -f removes it', async (ctx) => {
    const { dk, d } = env(ctx);
    // Kept across the restart: dockerd reads its config file again.
    await dk.reload({ 'live-restore': true });
    expect(await docker(['info', '--format', '{{.LiveRestoreEnabled}}'])).toBe('true');
    await docker(['network', 'create', '-d', 'bridgeport', '--subnet', '10.67.1.0/24', 'live']);
    const before = await snapshot();
    await runEcho('lr', 'live', ['-p', '8101:80']);
    const { rec, hostIf } = await endpointOf('lr', 'live');
    const created = Date.now();
    expect(await answers(8101)).toBe(true);

    let probing = true;
    const results: boolean[] = [];
    const prober = (async () => {
      while (probing) {
        results.push(await answers(8101));
        await sleep(100);
      }
    })();
    await dk.restart();
    // A few reconciler passes with dockerd answering again, the endpoint older than the grace period:
    // the reconciler could remove it, and must not.
    await sleep(Math.max(3_000, created + (GRACE_S + 3) * 1000 - Date.now()));
    probing = false;
    await prober;
    expect(results.length).toBeGreaterThan(5);
    expect(results.filter((ok) => !ok).length, 'probes that failed during and after the restart').toBe(0);
    expect(reaped(rec)).toBe(false);
    expect(await dockerRecords()).toEqual([rec]);
    expect(await veths()).toContain(hostIf);
    expect(await docker(['inspect', 'lr', '--format', '{{.State.Running}}'])).toBe('true');

    await docker(['rm', '-f', 'lr']);
    expect((await d.cli(['inspect', rec])).exitCode).not.toBe(0);
    expect(await answers(8101)).toBe(false);
    expect(await leftOver(before)).toBe('');
    await docker(['network', 'rm', 'live']);
  }, 120_000);

  it('dockerd restart without --live-restore: its stop removes every endpoint through the driver; nothing is left', async (ctx) => {
    const { dk } = env(ctx);
    await dk.reload({ 'live-restore': false });
    expect(await docker(['info', '--format', '{{.LiveRestoreEnabled}}'])).toBe('false');
    await docker(['network', 'create', '-d', 'bridgeport', '--subnet', '10.67.2.0/24', 'plain']);
    const before = await snapshot();
    // The echo server is PID 1 and ignores SIGTERM: dockerd's stop would wait its 10 s for each.
    await runEcho('p1', 'plain', ['-p', '8102:80', '--stop-timeout', '1']);
    await runEcho('p2', 'plain', ['--stop-timeout', '1']);
    const eps = [await endpointOf('p1', 'plain'), await endpointOf('p2', 'plain')];
    await dk.restart([]);
    // dockerd's own calls (Revoke, Leave, DeleteEndpoint) as it stops each container. The reconciler
    // may be first for an endpoint: dockerd stops listing it before its calls come; they are answered all the same.
    expect(await dockerRecords()).toEqual([]);
    expect(await leftOver(before)).toBe('');
    const byReconciler = eps.filter((e) => reaped(e.rec)).length;
    console.info(`[bridgeport] ${datapath}: dockerd stop without live-restore: ${eps.length - byReconciler} endpoints removed by dockerd's calls, ${byReconciler} by the reconciler during the stop`);
    expect(await docker(['inspect', 'p1', '--format', '{{.State.Running}}'])).toBe('false');

    // Started again: a new endpoint, the published port answers.
    await docker(['start', 'p1']);
    await until('p1 answers on 8102 after docker start', () => answers(8102));
    await docker(['rm', '-f', 'p1', 'p2']);
    expect(await leftOver(before)).toBe('');
    await docker(['network', 'rm', 'plain']);
  }, 120_000);

  it('dockerd killed (-9) without --live-restore: after its restart no endpoint, veth, rule or map entry is left', async (ctx) => {
    const { dk } = env(ctx);
    await docker(['network', 'create', '-d', 'bridgeport', '--subnet', '10.67.3.0/24', 'crash']);
    const before = await snapshot();
    const t0 = Date.now();
    await runEcho('k1', 'crash', ['-p', '8103:80']);
    const { rec, hostIf } = await endpointOf('k1', 'crash');
    await dk.kill();
    // dockerd is gone; containerd and the shims are not: the container still runs, and bridgeport keeps it
    // (its sandbox is there; dockerd does not answer).
    const whileDown = await answers(8103);
    await sleep(Math.max(1_000, (GRACE_S + 1) * 1000 - (Date.now() - t0)));
    expect(await dockerRecords()).toEqual([rec]);
    expect(await veths()).toContain(hostIf);
    await dk.restart([]);
    const ms = await until('nothing left after dockerd restarted', () => nothingLeft(before));
    console.info(`[bridgeport] ${datapath}: dockerd -9: container answered while dockerd was down: ${whileDown}; cleaned ${ms} ms after dockerd was ready, ${reapedLine(rec) ?? "by dockerd's calls"}`);
    expect(await answers(8103)).toBe(false);
    expect(await docker(['inspect', 'k1', '--format', '{{.State.Running}}'])).toBe('false');
    await docker(['rm', '-f', 'k1']);
    await docker(['network', 'rm', 'crash']);
  }, 120_000);

  it('calls lost while bridgeport was down: docker rm -f succeeds late, the reconciler removes the endpoint at start; the address and port serve again', async (ctx) => {
    const { d } = env(ctx);
    await docker(['network', 'create', '-d', 'bridgeport', '--subnet', '10.67.4.0/24', 'lost']);
    const before = await snapshot();
    await runEcho('l1', 'lost', ['--ip', '10.67.4.10', '-p', '8104:80']);
    const { rec, hostIf } = await endpointOf('l1', 'lost');
    const netId = await docker(['network', 'create', '-d', 'bridgeport', '--subnet', '10.67.5.0/24', 'lostnet']);
    const lostNet = `docker-${netId.slice(0, 12)}`;
    const bridge = `br-${netId.slice(0, 12)}`;
    await d.stop();

    // What the user sees with bridgeport down, measured side by side.
    const timed = async (args: string[]) => {
      const t0 = Date.now();
      const r = await s.dk.docker(args, { timeoutMs: 120_000 });
      return { ...r, ms: Date.now() - t0 };
    };
    const [rm, run, netRm] = await Promise.all([
      timed(['rm', '-f', 'l1']),
      timed(['run', '-d', '--name', 'l2', '--network', 'lost', IMAGE, 'sleep', '60']),
      timed(['network', 'rm', 'lostnet']),
    ]);
    console.info(
      `[bridgeport] ${datapath}: with bridgeport down: docker rm -f: exit ${rm.exitCode} after ${rm.ms} ms; ` +
        `docker run: exit ${run.exitCode} after ${run.ms} ms: ${run.stderr.trim()}; ` +
        `docker network rm: exit ${netRm.exitCode} after ${netRm.ms} ms: ${netRm.stderr.trim()}`,
    );
    expect(rm.exitCode, rm.stderr).toBe(0);
    expect(run.exitCode).not.toBe(0);
    expect(run.stderr).toMatch(/failed to create endpoint l2 on network lost: .*bridgeport\.sock/);
    // Left behind while bridgeport is down: the veth (and with it, the address and the port).
    expect(await veths()).toContain(hostIf);
    expect(await answers(8104)).toBe(false);

    await d.restart();
    // A network dockerd removed without bridgeport goes too; one dockerd kept is still there for docker network rm.
    const dockerKept = (await s.dk.docker(['network', 'inspect', 'lostnet'])).exitCode === 0;
    if (dockerKept) await docker(['network', 'rm', 'lostnet']);
    await until('bridgeport has no network dockerd does not have', async () => (await d.cli(['network', 'inspect', lostNet])).exitCode !== 0);
    expect((await s.topo.inHost('ip', ['link', 'show', bridge])).exitCode, `bridge ${bridge}`).not.toBe(0);
    if (!dockerKept) expect(daemonLogs(s.topo)).toContain(`docker reconcile: removed network ${lostNet}: dockerd has no network ${netId.slice(0, 12)}`);
    const ms = await until('the reconciler removed the lost endpoint', () => nothingLeft(before));
    console.info(`[bridgeport] ${datapath}: lost endpoint removed ${ms} ms after bridgeport was ready`);
    expect(reaped(rec)).toBe(true);

    // The same address and host port serve a new container.
    await docker(['rm', '-f', 'l2']);
    await runEcho('l3', 'lost', ['--ip', '10.67.4.10', '-p', '8104:80']);
    expect(await answers(8104)).toBe(true);
    await docker(['rm', '-f', 'l3']);
    expect(await leftOver(before)).toBe('');
    await docker(['network', 'rm', 'lost']);
  }, 150_000);
});
