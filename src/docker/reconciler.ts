import { stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import { type Daemon, findOwnedEndpoint, findOwnedNetwork } from '../daemon/daemon.js';
import { netnsInode } from '../host/netns.js';
import type { DockerEngine } from './engine.js';
import { dockerNetworkKeys, dockerSandboxKeys, type EngineFacts, planReconcile, type SandboxFact } from './reconcile.js';

export interface ReconcilerOptions {
  /** Seconds between runs after the first; 0: only the run at start. */
  intervalS: number;
  /** Seconds a record must have existed before it may be removed. */
  graceS: number;
}

/**
 * Runs planReconcile at start and then every interval: gathers the facts
 * (each joined endpoint's sandbox, dockerd's networks when it answers) and
 * removes what the plan names through the daemon's own operations, so the
 * veth, map entries, rules and address go the way dockerd's DeleteEndpoint
 * and DeleteNetwork would have taken them. Each removal is logged with its
 * reason.
 */
export class DockerReconciler {
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  /** Records already said to be kept undecided: said once, not every run. */
  private readonly said = new Set<string>();
  private running: Promise<void> | undefined;
  /** Whether dockerd answered the last time it was asked: a change is logged, not every failure. */
  private engineAnswered = true;
  /** The last reason dockerd's answers were set aside, logged when it changes. */
  private ignoredWhy: string | undefined;

  constructor(
    private readonly daemon: Daemon,
    private readonly engine: DockerEngine,
    private readonly options: ReconcilerOptions,
    private readonly log: (msg: string) => void,
  ) {}

  /** The first run now, then one every interval, all in the background (dockerd may be slow to answer). */
  start(): void {
    void this.runOnce().finally(() => this.schedule());
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
  }

  private schedule(): void {
    if (this.stopped || this.options.intervalS <= 0) return;
    this.timer = setTimeout(() => {
      void this.runOnce().finally(() => this.schedule());
    }, this.options.intervalS * 1000);
    this.timer.unref();
  }

  /** One pass; errors are logged, never thrown (the next pass tries again). */
  async runOnce(): Promise<void> {
    this.running ??= this.pass()
      .catch((err: unknown) => this.log(`docker reconcile: ${err instanceof Error ? err.message : String(err)}`))
      .finally(() => {
        this.running = undefined;
      });
    return this.running;
  }

  private async pass(): Promise<void> {
    const state = this.daemon.snapshot;
    const networkKeys = dockerNetworkKeys(state);
    // Nothing of Docker's: dockerd is not asked (daemons without the driver stay quiet).
    if (!networkKeys.length) return;
    const sandboxes = await sandboxFacts(dockerSandboxKeys(state));
    const engine = await this.engineFacts(networkKeys);
    const plan = planReconcile({ state, sandboxes, engine, now: Date.now(), graceMs: this.options.graceS * 1000 });
    if (plan.engineIgnored && plan.engineIgnored !== this.ignoredWhy) this.log(`docker reconcile: ${plan.engineIgnored}`);
    this.ignoredWhy = plan.engineIgnored;
    for (const u of plan.undecided) {
      if (this.said.has(u.name)) continue;
      this.said.add(u.name);
      this.log(`docker reconcile: endpoint ${u.name}: ${u.reason}`);
    }
    for (const e of plan.endpoints) {
      // Looked at again right before: a Join or a DeleteEndpoint from dockerd may have come meanwhile.
      const now = findOwnedEndpoint(this.daemon.snapshot, 'docker', e.key);
      if (!now || now.sandboxKey !== e.sandboxKey) continue;
      try {
        await this.daemon.deleteEndpoint('docker', e.key);
        this.log(`docker reconcile: removed endpoint ${e.name}: ${e.reason}`);
      } catch (err) {
        this.log(`docker reconcile: remove endpoint ${e.name} (${e.reason}): ${err instanceof Error ? err.message : String(err)}`);
      }
    }
    for (const n of plan.networks) {
      if (!findOwnedNetwork(this.daemon.snapshot, 'docker', n.key)) continue;
      try {
        await this.daemon.removeNetwork(n.name, 'docker');
        this.log(`docker reconcile: removed network ${n.name}: ${n.reason}`);
      } catch (err) {
        this.log(`docker reconcile: remove network ${n.name} (${n.reason}): ${err instanceof Error ? err.message : String(err)}`);
      }
    }
    for (const name of this.said) if (!this.daemon.snapshot.containers.some((c) => c.name === name)) this.said.delete(name);
  }

  /** What dockerd says of each network; undefined when it does not answer (down, restarting, slow). */
  private async engineFacts(keys: string[]): Promise<EngineFacts | undefined> {
    const networks = new Map<string, Set<string> | null>();
    try {
      for (const key of keys) {
        const n = await this.engine.network(key);
        networks.set(key, n && new Set(n.endpoints.map((e) => e.endpointId)));
      }
    } catch (err) {
      if (this.engineAnswered) {
        this.log(`docker reconcile: dockerd does not answer (${err instanceof Error ? err.message : String(err)}): judging by sandboxes only`);
      }
      this.engineAnswered = false;
      return undefined;
    }
    if (!this.engineAnswered) this.log(`docker reconcile: dockerd answers again on ${this.engine.host}`);
    this.engineAnswered = true;
    return { networks };
  }
}

/**
 * A SandboxKey is dockerd's bind mount of the container's namespace. After
 * the sandbox is removed the path is either gone or, when only the mount was
 * undone, a plain empty file: only a file on nsfs is a namespace. A folder
 * that is not there at all says this daemon does not see dockerd's mounts.
 */
async function sandboxFacts(keys: string[]): Promise<Map<string, SandboxFact>> {
  const out = new Map<string, SandboxFact>();
  for (const key of keys) {
    if ((await netnsInode(key)) !== undefined) out.set(key, 'alive');
    else out.set(key, (await isDirectory(dirname(key))) ? 'gone' : 'unknown');
  }
  return out;
}

async function isDirectory(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isDirectory();
  } catch {
    return false;
  }
}
