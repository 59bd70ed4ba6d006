import { dockerEndpointRecord } from '../helpers/records.js';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Daemon } from '../../src/daemon/daemon.js';
import type { DockerEngine, EngineNetwork } from '../../src/docker/engine.js';
import { dockerNetworkKeys, dockerSandboxKeys, planReconcile, type ReconcileFacts, type SandboxFact } from '../../src/docker/reconcile.js';
import { DockerReconciler } from '../../src/docker/reconciler.js';
import type { ContainerRecord, NetworkRecord, State } from '../../src/model/state.js';

const NOW = Date.parse('2026-12-01T12:00:00Z');
const GRACE = 60_000;
const ago = (s: number): string => new Date(NOW - s * 1000).toISOString();
const id = (c: string): string => c.repeat(64).slice(0, 64);

const NET_A = id('a');
const NET_B = id('b');

function network(key: string, created = ago(3600)): NetworkRecord {
  return {
    id: id('f'),
    name: `docker-${key.slice(0, 12)}`,
    bridge: `br-${key.slice(0, 12)}`,
    subnet: '10.66.0.0/24',
    gateway: '10.66.0.1',
    ipRange: '10.66.0.0/24',
    mtu: 1500,
    icc: true,
    masquerade: true,
    internal: false,
    hostBindingIp: undefined,
    isDefault: false,
    options: {},
    owner: { frontEnd: 'docker', key },
    created,
  };
}

function endpoint(key: string, net: string, opts: { sandboxKey?: string; created?: string } = {}): ContainerRecord {
  return dockerEndpointRecord({ key, network: `docker-${net.slice(0, 12)}`, networkId: net, id: id('9'), sandboxKey: opts.sandboxKey, created: opts.created ?? ago(3600) });
}

/** bridgeport's own container on its default network: never the reconciler's business. */
function ownContainer(): ContainerRecord {
  const c = endpoint(id('0'), NET_A, { sandboxKey: '/run/bridgeport/netns/x' });
  c.name = 'web';
  c.endpoints[0]!.network = 'bridge';
  delete c.endpoints[0]!.owner;
  return c;
}

function facts(state: Partial<State>, more: Partial<ReconcileFacts> = {}): ReconcileFacts {
  return {
    state: { version: 1, networks: [], containers: [], ...state },
    sandboxes: new Map(),
    engine: undefined,
    now: NOW,
    graceMs: GRACE,
    ...more,
  };
}

const engine = (networks: [string, string[] | null][]) => ({ networks: new Map(networks.map(([k, eps]) => [k, eps && new Set(eps)])) });
const sandboxes = (entries: [string, SandboxFact][]) => new Map(entries);

describe('planReconcile', () => {
  const E1 = id('1');
  const E2 = id('2');
  const SB1 = '/var/run/docker/netns/111';

  it('a joined endpoint whose sandbox is gone is stale, with dockerd down too; one whose sandbox is alive is not', () => {
    const state = { networks: [network(NET_A)], containers: [endpoint(E1, NET_A, { sandboxKey: SB1 }), endpoint(E2, NET_A, { sandboxKey: '/var/run/docker/netns/222' })] };
    const plan = planReconcile(facts(state, { sandboxes: sandboxes([[SB1, 'gone'], ['/var/run/docker/netns/222', 'alive']]) }));
    expect(plan.endpoints).toEqual([{ key: E1, name: `docker-${E1.slice(0, 12)}`, sandboxKey: SB1, reason: `its sandbox ${SB1} is gone` }]);
    expect(plan.networks).toEqual([]);
  });

  it('a sandbox this daemon cannot judge (its folder unseen) removes nothing', () => {
    const state = { networks: [network(NET_A)], containers: [endpoint(E1, NET_A, { sandboxKey: SB1 })] };
    expect(planReconcile(facts(state, { sandboxes: sandboxes([[SB1, 'unknown']]) })).endpoints).toEqual([]);
  });

  it('dockerd answering: an endpoint it does not list is stale even with its sandbox alive; one it lists is kept', () => {
    const state = { networks: [network(NET_A)], containers: [endpoint(E1, NET_A, { sandboxKey: SB1 }), endpoint(E2, NET_A)] };
    const plan = planReconcile(facts(state, { sandboxes: sandboxes([[SB1, 'alive']]), engine: engine([[NET_A, [E2]]]) }));
    expect(plan.endpoints.map((e) => [e.key, e.reason])).toEqual([[E1, `dockerd lists no endpoint ${E1.slice(0, 12)} in network ${NET_A.slice(0, 12)}`]]);
  });

  it('a dockerd that has none of the networks (a wrong --docker-host) is not believed: only the sandbox rule applies', () => {
    const state = { networks: [network(NET_A), network(NET_B)], containers: [endpoint(E1, NET_A, { sandboxKey: SB1 }), endpoint(E2, NET_B, { sandboxKey: '/var/run/docker/netns/222' })] };
    const plan = planReconcile(facts(state, { sandboxes: sandboxes([[SB1, 'alive'], ['/var/run/docker/netns/222', 'gone']]), engine: engine([[NET_A, null], [NET_B, null]]) }));
    expect(plan.endpoints.map((e) => [e.key, e.reason])).toEqual([[E2, 'its sandbox /var/run/docker/netns/222 is gone']]);
    expect(plan.networks).toEqual([]);
    expect(plan.engineIgnored).toMatch(/none of bridgeport's 2 Docker networks: is --docker-host/);
  });

  it('a network dockerd no longer has: all its endpoints are stale, then the network, empty, is removed', () => {
    const state = { networks: [network(NET_A), network(NET_B)], containers: [endpoint(E1, NET_A, { sandboxKey: SB1 }), endpoint(E2, NET_B)] };
    const plan = planReconcile(facts(state, { sandboxes: sandboxes([[SB1, 'alive']]), engine: engine([[NET_A, null], [NET_B, [E2]]]) }));
    expect(plan.endpoints.map((e) => e.key)).toEqual([E1]);
    expect(plan.endpoints[0]!.reason).toBe(`dockerd has no network ${NET_A.slice(0, 12)}`);
    expect(plan.networks).toEqual([{ key: NET_A, name: network(NET_A).name, reason: `dockerd has no network ${NET_A.slice(0, 12)}` }]);
  });

  it('a network dockerd does not have keeps while an endpoint on it is kept (young)', () => {
    const state = { networks: [network(NET_A)], containers: [endpoint(E1, NET_A, { created: ago(5) })] };
    const plan = planReconcile(facts(state, { engine: engine([[NET_A, null], [NET_B, []]]) }));
    expect(plan).toEqual({ endpoints: [], networks: [], undecided: [] });
  });

  it('the grace period: a `docker run` in progress (created, not yet listed, sandbox file not made yet) is left alone by both rules', () => {
    const state = { networks: [network(NET_A, ago(10))], containers: [endpoint(E1, NET_A, { sandboxKey: SB1, created: ago(59) }), endpoint(E2, NET_A, { created: ago(1) })] };
    const plan = planReconcile(facts(state, { sandboxes: sandboxes([[SB1, 'gone']]), engine: engine([[NET_A, null], [NET_B, []]]) }));
    expect(plan).toEqual({ endpoints: [], networks: [], undecided: [] });
    // An unreadable creation time is no licence either.
    const odd = endpoint(E1, NET_A, { sandboxKey: SB1, created: 'yesterday' });
    expect(planReconcile(facts({ networks: [network(NET_A)], containers: [odd] }, { sandboxes: sandboxes([[SB1, 'gone']]) })).endpoints).toEqual([]);
  });

  it('dockerd down: an endpoint not joined to a sandbox is kept, and said so', () => {
    const state = { networks: [network(NET_A)], containers: [endpoint(E1, NET_A)] };
    const plan = planReconcile(facts(state));
    expect(plan.endpoints).toEqual([]);
    expect(plan.networks).toEqual([]);
    expect(plan.undecided).toEqual([{ name: `docker-${E1.slice(0, 12)}`, reason: expect.stringMatching(/dockerd does not answer/) }]);
  });

  it('a network dockerd was not asked about (no answer for it) judges nothing', () => {
    const state = { networks: [network(NET_A)], containers: [endpoint(E1, NET_A)] };
    const plan = planReconcile(facts(state, { engine: engine([]) }));
    expect(plan).toEqual({ endpoints: [], networks: [], undecided: [] });
  });

  it("bridgeport's own containers and networks are never touched", () => {
    const own = { ...network(NET_A), owner: undefined, name: 'mine' };
    const state = { networks: [own], containers: [ownContainer()] };
    const plan = planReconcile(facts(state, { sandboxes: sandboxes([['/run/bridgeport/netns/x', 'gone']]), engine: engine([]) }));
    expect(plan).toEqual({ endpoints: [], networks: [], undecided: [] });
  });

  it('what to ask: every Docker network (also one only an endpoint names) and joined endpoints\' sandboxes', () => {
    const state: State = { version: 1, networks: [network(NET_A)], containers: [endpoint(E1, NET_B, { sandboxKey: SB1 }), endpoint(E2, NET_A), ownContainer()] };
    expect(dockerNetworkKeys(state).sort()).toEqual([NET_A, NET_B].sort());
    expect(dockerSandboxKeys(state)).toEqual([SB1]);
  });
});

describe('DockerReconciler', () => {
  const E1 = id('1');
  const E2 = id('2');
  const E3 = id('3');
  // The runner reads the real clock: an hour before it.
  const old = () => ({ created: new Date(Date.now() - 3_600_000).toISOString() });
  const net = (key: string) => network(key, old().created);

  /** The core as the reconciler sees it: the state, and the two operations it may call. */
  function fakeDaemon(state: State) {
    const calls: string[] = [];
    const daemon = {
      get snapshot() {
        return state;
      },
      async deleteEndpoint(frontEnd: string, key: string) {
        calls.push(`deleteEndpoint ${frontEnd} ${key.slice(0, 12)}`);
        state.containers = state.containers.filter((c) => c.endpoints[0]?.owner?.key !== key);
      },
      async removeNetwork(name: string, frontEnd: string) {
        calls.push(`removeNetwork ${name} ${frontEnd}`);
        state.networks = state.networks.filter((n) => n.name !== name);
      },
    };
    return { daemon: daemon as unknown as Daemon, calls };
  }

  /** dockerd's API: `networks` as it answers, or down (every call fails). */
  function fakeEngine(networks: Record<string, string[]> | 'down') {
    const asked: string[] = [];
    const engine = {
      host: 'unix:///fake/docker.sock',
      async network(netId: string): Promise<EngineNetwork | null> {
        asked.push(netId);
        if (networks === 'down') throw new Error('connect ENOENT /fake/docker.sock');
        const eps = networks[netId];
        return eps ? { id: netId, name: 'n', driver: 'bridgeport', endpoints: eps.map((e) => ({ containerId: 'c', name: 'c', endpointId: e })) } : null;
      },
    };
    return { engine: engine as unknown as DockerEngine, asked };
  }

  const withTmp = async (fn: (dir: string) => Promise<void>) => {
    const dir = await mkdtemp(path.join(tmpdir(), 'bpt-reconcile-'));
    try {
      await fn(dir);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  };

  it('dockerd down: removes the endpoint whose sandbox is an empty file, keeps a live one and one it cannot see; says dockerd is down once', async () => {
    await withTmp(async (dir) => {
      // An undone bind mount leaves a plain empty file; a namespace file is on nsfs (our own serves).
      const undone = path.join(dir, 'netns-gone');
      await writeFile(undone, '');
      const state: State = {
        version: 1,
        networks: [net(NET_A)],
        containers: [
          endpoint(E1, NET_A, { sandboxKey: undone, ...old() }),
          endpoint(E2, NET_A, { sandboxKey: '/proc/self/ns/net', ...old() }),
          endpoint(E3, NET_A, { sandboxKey: path.join(dir, 'no-such-folder', 'ns'), ...old() }),
        ],
      };
      const { daemon, calls } = fakeDaemon(state);
      const { engine } = fakeEngine('down');
      const logs: string[] = [];
      const r = new DockerReconciler(daemon, engine, { intervalS: 0, graceS: 60 }, (m) => logs.push(m));
      await r.runOnce();
      await r.runOnce();
      expect(calls).toEqual([`deleteEndpoint docker ${E1.slice(0, 12)}`]);
      expect(logs.filter((l) => l.includes('does not answer'))).toHaveLength(1);
      expect(logs).toContain(`docker reconcile: removed endpoint docker-${E1.slice(0, 12)}: its sandbox ${undone} is gone`);
      expect(state.containers.map((c) => c.name)).toEqual([`docker-${E2.slice(0, 12)}`, `docker-${E3.slice(0, 12)}`]);
    });
  });

  it('dockerd answering: removes what it does not list, then the network it no longer has; says it answers again', async () => {
    const state: State = {
      version: 1,
      networks: [net(NET_A), net(NET_B)],
      containers: [endpoint(E1, NET_A, { sandboxKey: '/proc/self/ns/net', ...old() }), endpoint(E2, NET_B, { sandboxKey: '/proc/self/ns/net', ...old() }), endpoint(E3, NET_B, old())],
    };
    const { daemon, calls } = fakeDaemon(state);
    const logs: string[] = [];
    let answers: Record<string, string[]> | 'down' = 'down';
    const engine = {
      host: 'unix:///fake/docker.sock',
      network: (netId: string) => fakeEngine(answers).engine.network(netId),
    } as unknown as DockerEngine;
    const r = new DockerReconciler(daemon, engine, { intervalS: 0, graceS: 60 }, (m) => logs.push(m));
    await r.runOnce();
    expect(calls).toEqual([]);
    expect(logs).toContain(`docker reconcile: endpoint docker-${E3.slice(0, 12)}: not joined to a sandbox and dockerd does not answer: kept until dockerd can say`);

    answers = { [NET_B]: [E2] };
    await r.runOnce();
    expect(logs).toContain('docker reconcile: dockerd answers again on unix:///fake/docker.sock');
    expect(calls).toEqual([`deleteEndpoint docker ${E1.slice(0, 12)}`, `deleteEndpoint docker ${E3.slice(0, 12)}`, `removeNetwork ${network(NET_A).name} docker`]);
    expect(logs).toContain(`docker reconcile: removed network ${network(NET_A).name}: dockerd has no network ${NET_A.slice(0, 12)}`);
  });

  it('with nothing of Docker\'s in the state dockerd is not asked', async () => {
    const { daemon } = fakeDaemon({ version: 1, networks: [], containers: [ownContainer()] });
    const { engine, asked } = fakeEngine({});
    await new DockerReconciler(daemon, engine, { intervalS: 0, graceS: 60 }, () => undefined).runOnce();
    expect(asked).toEqual([]);
  });
});
