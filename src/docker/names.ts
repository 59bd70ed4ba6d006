import type { Daemon, OwnerNames } from '../daemon/daemon.js';
import type { State } from '../model/state.js';
import type { DockerEngine, EngineNetwork } from './engine.js';

/**
 * Docker's names of the containers and networks on bridgeport networks.
 * dockerd sends the driver IDs only, so the names are asked of its Engine API
 * after the fact: soon after CreateNetwork and Join (dockerd has the network
 * and the container by then, or shortly after), at start and every period
 * (which also follows `docker rename`). They are recorded with the state and
 * only shown; when dockerd cannot be asked the records keep what is known,
 * and a record never named is shown by its own name (the endpoint ID's).
 */

/** Docker's rule for container names (moby's RestrictedNameChars). */
const DOCKER_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$/;

/** The names in dockerd's answers that differ from what `state` records; empty maps when nothing changed. */
export function ownerNames(state: State, answers: EngineNetwork[]): OwnerNames {
  const names: OwnerNames = { networks: new Map(), endpoints: new Map() };
  const networks = new Map(state.networks.filter((n) => n.owner?.frontEnd === 'docker').map((n) => [n.owner!.key, n]));
  const endpoints = new Map(
    state.containers.flatMap((c) => c.endpoints).filter((e) => e.owner?.frontEnd === 'docker').map((e) => [e.owner!.key, e.owner!]),
  );
  for (const answer of answers) {
    const net = networks.get(answer.id);
    if (!net) continue;
    if (DOCKER_NAME.test(answer.name) && net.owner!.name !== answer.name) names.networks.set(answer.id, answer.name);
    for (const ep of answer.endpoints) {
      const owner = endpoints.get(ep.endpointId);
      // "ep-<endpoint ID>" keys are endpoints without a container (dockerd lists them too).
      if (!owner || ep.containerId.startsWith('ep-') || !DOCKER_NAME.test(ep.name)) continue;
      if (owner.container?.id === ep.containerId && owner.container.name === ep.name) continue;
      names.endpoints.set(ep.endpointId, { id: ep.containerId, name: ep.name });
    }
  }
  return names;
}

/** Whether every Docker network and every joined Docker endpoint of `state` has its name. */
export function allNamed(state: State): boolean {
  if (state.networks.some((n) => n.owner?.frontEnd === 'docker' && n.owner.name === undefined)) return false;
  return state.containers.every((c) => c.sandboxKey === '' || c.endpoints.every((e) => e.owner?.frontEnd !== 'docker' || e.owner.container));
}

/**
 * After a driver call, dockerd may take a moment to record the container:
 * asked again with these delays until all is named. The first waits until a
 * `docker run` has usually returned: asked during it (from 200 ms on), the
 * look-up of a network of 60 containers made each `docker run` 100–130 ms
 * slower (bench/docker.mjs, names looked up or not).
 */
const SOON_MS = [1_500, 2_000, 4_000, 8_000];
export const NAMES_PERIOD_MS = 30_000;

export class DockerNames {
  private timer: NodeJS.Timeout | undefined;
  private soonTimer: NodeJS.Timeout | undefined;
  private running: Promise<boolean> | undefined;
  private again = false;
  /** The cause dockerd could not be asked, while it cannot; logged once per outage. */
  private failing: string | undefined;

  constructor(
    private readonly daemon: Daemon,
    private readonly engine: DockerEngine,
    private readonly log: (msg: string) => void,
    private readonly periodMs = NAMES_PERIOD_MS,
  ) {}

  /** Asks now and every period. */
  start(): void {
    this.soon();
    this.timer = setInterval(() => void this.refresh(), this.periodMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    clearTimeout(this.soonTimer);
  }

  /** Asks shortly, and a few times more while something is unnamed; returns at once (never delays a driver answer). */
  soon(): void {
    clearTimeout(this.soonTimer);
    const attempt = (i: number): void => {
      this.soonTimer = setTimeout(() => {
        void this.refresh().then((done) => {
          if (!done && i + 1 < SOON_MS.length) attempt(i + 1);
        });
      }, SOON_MS[i]);
      this.soonTimer.unref();
    };
    attempt(0);
  }

  /** One look-up of every Docker network's names; true when all is named. Never throws. */
  refresh(): Promise<boolean> {
    if (this.running) {
      // One at a time; a request made meanwhile runs once more after it.
      this.again = true;
      return this.running;
    }
    this.running = (async () => {
      let done = false;
      do {
        this.again = false;
        done = await this.lookUp();
      } while (this.again);
      return done;
    })().finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  private async lookUp(): Promise<boolean> {
    const keys = this.daemon.snapshot.networks.filter((n) => n.owner?.frontEnd === 'docker').map((n) => n.owner!.key);
    if (!keys.length) return true;
    const answers: EngineNetwork[] = [];
    try {
      for (const key of keys) {
        const net = await this.engine.network(key);
        if (net) answers.push(net);
      }
    } catch (err) {
      const cause = err instanceof Error ? err.message : String(err);
      if (this.failing === undefined) {
        this.log(`docker names: cannot ask dockerd at ${this.engine.host} (${cause}); records keep the names known, the others show their endpoint ID (logged once until dockerd answers)`);
      }
      this.failing = cause;
      return false;
    }
    if (this.failing !== undefined) this.log(`docker names: dockerd at ${this.engine.host} answers again`);
    this.failing = undefined;
    const names = ownerNames(this.daemon.snapshot, answers);
    if (names.networks.size || names.endpoints.size) {
      try {
        await this.daemon.nameOwned('docker', names);
      } catch (err) {
        this.log(`docker names: ${err instanceof Error ? err.message : String(err)}`);
        return false;
      }
    }
    return allNamed(this.daemon.snapshot);
  }
}
