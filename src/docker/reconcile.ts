import type { ContainerRecord, NetworkRecord, State } from '../model/state.js';

/**
 * Which of Docker's endpoints and networks bridgeport still holds although
 * dockerd is done with them: calls dockerd sent while bridgeport was down
 * (it gives up after its retries and never sends them again), or a dockerd
 * killed before it could send them. Pure: the caller gathers the facts (the
 * state, what each sandbox looks like, what dockerd's API says) and carries
 * out the removals through the daemon's ordinary operations.
 */

/** What a SandboxKey path looks like now. */
export type SandboxFact =
  /** A mounted network namespace: the container's sandbox is there. */
  | 'alive'
  /** The folder is there but the path is no namespace (missing, or a bind mount undone: a plain empty file). */
  | 'gone'
  /** The folder itself is not seen (another mount namespace than dockerd's, dockerd's exec-root not made yet): no judgement. */
  | 'unknown';

/** What dockerd's API says of bridgeport's Docker networks; undefined when dockerd did not answer. */
export interface EngineFacts {
  /** Docker network ID → the endpoint IDs dockerd lists in it (GET /networks/{id}), or null when dockerd has no such network. */
  networks: Map<string, Set<string> | null>;
}

export interface ReconcileFacts {
  state: State;
  /** SandboxKey → what it looks like; keys of joined endpoints only. */
  sandboxes: Map<string, SandboxFact>;
  engine: EngineFacts | undefined;
  /** ms since the epoch. */
  now: number;
  /**
   * Records younger than this are never removed. dockerd calls Join before the
   * sandbox's namespace file exists, and lists an endpoint in its API only
   * once the container's sandbox holds it, so a `docker run` in progress looks
   * stale to both rules for a moment.
   */
  graceMs: number;
}

export interface StaleEndpoint {
  /** Docker's endpoint ID. */
  key: string;
  /** bridgeport's record (docker-<12>). */
  name: string;
  /** The sandbox the decision was made on ('' when not joined): re-checked before removal. */
  sandboxKey: string;
  reason: string;
}

export interface StaleNetwork {
  /** Docker's network ID. */
  key: string;
  name: string;
  reason: string;
}

export interface ReconcilePlan {
  endpoints: StaleEndpoint[];
  networks: StaleNetwork[];
  /** Records kept although they may be stale, and why (said once per record by the caller). */
  undecided: { name: string; reason: string }[];
  /** Why dockerd's answers were not used although it answered; undefined when they were (or it did not answer). */
  engineIgnored?: string;
}

/** The Docker owner of a record's endpoint; bridgeport's own records have none. */
function dockerEndpoint(c: ContainerRecord) {
  const ep = c.endpoints.find((e) => e.owner?.frontEnd === 'docker');
  return ep?.owner;
}

const ageMs = (created: string, now: number): number => now - Date.parse(created);

export function planReconcile(facts: ReconcileFacts): ReconcilePlan {
  const plan: ReconcilePlan = { endpoints: [], networks: [], undecided: [] };
  let f = facts;
  // A dockerd that has none of bridgeport's Docker networks is most likely not
  // the one this driver serves (a wrong --docker-host): its word removes nothing.
  if (f.engine?.networks.size && [...f.engine.networks.values()].every((eps) => eps === null)) {
    plan.engineIgnored = `dockerd has none of bridgeport's ${f.engine.networks.size} Docker networks: is --docker-host the dockerd this driver serves? judging by sandboxes only`;
    f = { ...f, engine: undefined };
  }
  const removed = new Set<string>();
  for (const c of f.state.containers) {
    const owner = dockerEndpoint(c);
    if (!owner) continue;
    // A record of unknown age (unparsable) is treated as young: never removed on a guess.
    const age = ageMs(c.created, f.now);
    if (!(age >= f.graceMs)) continue;
    const reason = whyStale(c, owner, f);
    if (typeof reason === 'string') {
      plan.endpoints.push({ key: owner.key, name: c.name, sandboxKey: c.sandboxKey, reason });
      removed.add(c.name);
    } else if (reason) {
      plan.undecided.push({ name: c.name, reason: reason.undecided });
    }
  }
  if (f.engine) {
    for (const n of f.state.networks) {
      if (n.owner?.frontEnd !== 'docker') continue;
      if (f.engine.networks.get(n.owner.key) !== null) continue;
      if (!(ageMs(n.created, f.now) >= f.graceMs)) continue;
      if (!networkEmptyAfter(n, f.state, removed)) continue;
      plan.networks.push({ key: n.owner.key, name: n.name, reason: `dockerd has no network ${n.owner.key.slice(0, 12)}` });
    }
  }
  return plan;
}

function whyStale(
  c: ContainerRecord,
  owner: { key: string; network: string },
  f: ReconcileFacts,
): string | { undecided: string } | undefined {
  if (c.sandboxKey && f.sandboxes.get(c.sandboxKey) === 'gone') {
    return `its sandbox ${c.sandboxKey} is gone`;
  }
  if (f.engine) {
    const listed = f.engine.networks.get(owner.network);
    // Not asked about (the caller found no answer for it): no judgement.
    if (listed === undefined) return undefined;
    if (listed === null) return `dockerd has no network ${owner.network.slice(0, 12)}`;
    if (!listed.has(owner.key)) return `dockerd lists no endpoint ${owner.key.slice(0, 12)} in network ${owner.network.slice(0, 12)}`;
    return undefined;
  }
  if (!c.sandboxKey) {
    return { undecided: 'not joined to a sandbox and dockerd does not answer: kept until dockerd can say' };
  }
  return undefined;
}

function networkEmptyAfter(n: NetworkRecord, state: State, removed: Set<string>): boolean {
  return !state.containers.some((c) => !removed.has(c.name) && c.endpoints.some((e) => e.network === n.name));
}

/** The Docker network IDs dockerd must be asked about: every Docker network and every Docker endpoint's network. */
export function dockerNetworkKeys(state: State): string[] {
  const keys = new Set<string>();
  for (const n of state.networks) if (n.owner?.frontEnd === 'docker') keys.add(n.owner.key);
  for (const c of state.containers) {
    const owner = dockerEndpoint(c);
    if (owner) keys.add(owner.network);
  }
  return [...keys];
}

/** Joined Docker endpoints' SandboxKeys: what the caller must look at. */
export function dockerSandboxKeys(state: State): string[] {
  return [...new Set(state.containers.filter((c) => dockerEndpoint(c) && c.sandboxKey).map((c) => c.sandboxKey))];
}
