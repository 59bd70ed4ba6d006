import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { expect, it } from 'vitest';
import { startCniBed } from '../helpers/cni.js';
import { CONTAINERD_IMAGE, useContainerd } from '../helpers/containerd.js';
import { DATAPATHS, describePriv } from '../helpers/privileged.js';
import type { CommandResult, DaemonHandle } from '../helpers/topology.js';
import { startEchoServer } from '../helpers/traffic.js';

/**
 * Real containerd (Debian's 1.6, runc) attaching a container to a bridgeport
 * network through bridgeport-cni with `ctr run --cni`, which makes the CNI
 * calls itself (ADD once the task exists, DEL when a foreground `--rm` run
 * ends): one containerd and one bridgeport daemon per datapath, in the test's
 * host namespace (containerd in a mount namespace of its own,
 * test/helpers/containerd.ts), the conflist written by `bridgeport cni
 * conflist` into the folder that becomes /etc/cni/net.d there, the plugin as
 * `bridgeport` in the one that becomes /opt/cni/bin. A smoke test: ctr sends
 * no ports and no CNI_ARGS.
 */
const NET = 'ctrnet';
const SUBNET = '10.90.4.0/24';

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

describePriv.each(DATAPATHS)('containerd (ctr run --cni) through bridgeport-cni (%s)', (datapath) => {
  let d: DaemonHandle | undefined;
  const s = useContainerd({
    what: `containerd (${datapath})`,
    setup: async (topo) => {
      const { d: daemon, confDir, pluginDir } = await startCniBed(topo, datapath, NET, SUBNET);
      d = daemon;
      return { cniConfigDir: confDir, cniPluginDir: pluginDir };
    },
  });
  const daemon = (): DaemonHandle => {
    if (!d) throw new Error('no bridgeport daemon (setup failed?)');
    return d;
  };
  const records = async (): Promise<any[]> => (await daemon().cliJson(['ps', '--json'])) as any[];
  const logs = (): string => `--- containerd ---\n${s.cd.logs().slice(-3000)}\n--- bridgeport ---\n${daemon().logs().slice(-3000)}`;

  it('run --cni --rm: ADD gives eth0 an address of the network, egress is masqueraded; the DEL at its end leaves nothing', async (ctx) => {
    const { topo, cd } = s.env(ctx);
    const echo = await startEchoServer(topo.clientNsPath, ['tcp:9000']);
    const pidFile = path.join(cd.dir, 'c1.pid');
    let pid: number | undefined;
    // The container reports its address and what the client saw, then waits for /tmp/go (written from here through /proc/PID/root).
    const script = `ip -4 addr show eth0 && echo | nc -w 3 ${topo.clientIp} 9000 && while [ ! -e /tmp/go ]; do sleep 0.05; done`;
    const run = cd.ctr(['run', '--cni', '--rm', '--pid-file', pidFile, CONTAINERD_IMAGE, 'c1', 'sh', '-c', script], { timeoutMs: 30_000 });
    let ended: CommandResult | undefined;
    void run.then((r) => {
      ended = r;
    });
    const ctrFailed = (what: string): Error =>
      new Error(`${what}\n--- ctr stdout ---\n${ended?.stdout}\n--- ctr stderr ---\n${ended?.stderr}\n${logs()}`);
    const go = () => (pid ? writeFile(`/proc/${pid}/root/tmp/go`, '').catch(() => undefined) : Promise.resolve());
    try {
      for (const deadline = Date.now() + 15_000; ; await sleep(50)) {
        pid = Number((await readFile(pidFile, 'utf8').catch(() => '')).trim()) || undefined;
        if (pid) break;
        if (ended) throw ctrFailed(`ctr run ended (exit ${ended.exitCode}) before its task started`);
        if (Date.now() > deadline) throw ctrFailed('no task pid after 15 s');
      }
      // While it runs: bridgeport lists the attachment, as ctr named it.
      let listed = await records();
      for (const deadline = Date.now() + 10_000; !listed.length; listed = await records()) {
        if (ended) throw ctrFailed(`ctr run ended (exit ${ended.exitCode}) before bridgeport listed its container`);
        if (Date.now() > deadline) throw ctrFailed('bridgeport lists no container 10 s after the task started');
      }
      expect(listed.length, JSON.stringify(listed)).toBe(1);
      const rec = listed[0];
      // ctr's container ID is <namespace>-<id>; with no K8S_POD_NAME, bridgeport shows its first 12 characters.
      const containerId = `${cd.namespace}-c1`;
      expect(rec.Names).toBe(containerId.slice(0, 12));
      const bp = ((await daemon().cliJson(['inspect', rec.ID])) as any[])[0];
      expect(bp.Owner.FrontEnd).toBe('cni');
      expect(bp.Owner.ContainerID).toBe(containerId);
      expect(bp.Owner.EndpointID).toBe(`${containerId}/eth0`);
      const attached = bp.NetworkSettings.Networks[NET].IPAddress as string;

      await go();
      const r = await run;
      expect(r.exitCode, `ctr run: exit ${r.exitCode}\n--- stdout ---\n${r.stdout}\n--- stderr ---\n${r.stderr}\n${logs()}`).toBe(0);
      const addr = /inet (\d+\.\d+\.\d+\.\d+)\/(\d+)/.exec(r.stdout);
      expect(addr, r.stdout).not.toBeNull();
      expect(addr![1]).toMatch(/^10\.90\.4\.\d+$/);
      expect(addr![2]).toBe('24');
      expect(addr![1]).toBe(attached);
      const reply = /peer=(\S+):\d+ local=(\S+)/.exec(r.stdout);
      expect(reply, r.stdout).not.toBeNull();
      expect(reply![1]).toBe(topo.hostIp);
      expect(reply![2]).toBe(`${topo.clientIp}:9000`);
    } finally {
      await go();
      await run;
      await echo.stop();
    }

    // ctr's DEL (empty CNI_NETNS) removed the attachment and its veth before ctr ended; --rm removed the container.
    expect(await records()).toEqual([]);
    const links = (await topo.inHost('ip', ['-o', 'link', 'show', 'type', 'veth'])).stdout.trim().split('\n');
    expect(links.map((l) => l.split(':')[1]!.trim().split('@')[0])).toEqual([topo.uplink]);
    expect(await cd.ok(['containers', 'ls', '--quiet'])).toBe('');
    expect(await cd.ok(['tasks', 'ls', '--quiet'])).toBe('');
  });
});
