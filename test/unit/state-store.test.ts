import { appendFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { StateStore } from '../../src/daemon/state-store.js';
import { type ContainerRecord, emptyState, type PublishedPort, type State } from '../../src/model/state.js';

const container = (name: string, ports: PublishedPort[] = []): ContainerRecord => ({
  id: `${name}-id`,
  name,
  mode: 'bridge',
  sandboxKey: `/run/netns/${name}`,
  ownsSandbox: true,
  joined: undefined,
  hostname: name,
  cmd: ['sleep', 'infinity'],
  pid: undefined,
  pidStart: undefined,
  logPath: undefined,
  hostsPath: undefined,
  endpoints: [],
  ports,
  exposed: [],
  publishAll: false,
  links: [],
  created: '2026-11-23T00:00:00.000Z',
});

const port = (hostPort: number, containerPort = 80): PublishedPort => ({ proto: 'tcp', hostIp: '0.0.0.0', hostPort, containerPort, spec: `${hostPort}:${containerPort}` });

/** JSON round trip: what a reload can give back (no undefined fields). */
const plain = (s: State): State => JSON.parse(JSON.stringify(s));

describe('StateStore journal', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'bp-store-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('replays appended port changes onto the snapshot', async () => {
    const store = new StateStore(dir);
    const state: State = { ...emptyState(), containers: [container('web', [port(8080)]), container('db')] };
    await store.save(state);
    state.containers[0]!.ports.push(port(8081), port(8082, 81));
    await store.append({ publish: { container: 'web', ports: [port(8081), port(8082, 81)] } }, () => state);
    state.containers[0]!.ports = state.containers[0]!.ports.filter((p) => p.hostPort !== 8080);
    await store.append({ unpublish: { container: 'web', ports: [{ proto: 'tcp', hostIp: '0.0.0.0', hostPort: 8080, containerPort: 80 }] } }, () => state);
    state.containers[1]!.ports.push(port(5432, 5432));
    await store.append({ publish: { container: 'db', ports: [port(5432, 5432)] } }, () => state);

    // The snapshot itself was not rewritten.
    expect(JSON.parse(await readFile(store.path, 'utf8')).containers[0].ports).toHaveLength(1);
    expect(await new StateStore(dir).load()).toEqual(plain(state));
  });

  it('a whole save empties the journal, and records of an older journal are never replayed', async () => {
    const store = new StateStore(dir);
    const state: State = { ...emptyState(), containers: [container('web')] };
    await store.save(state);
    state.containers[0]!.ports.push(port(8080));
    await store.append({ publish: { container: 'web', ports: [port(8080)] } }, () => state);
    const oldJournal = await readFile(store.journalPath, 'utf8');
    await store.save(state);
    // As if the daemon died after the new snapshot's rename, before the journal was removed.
    await writeFile(store.journalPath, oldJournal);
    const loaded = await new StateStore(dir).load();
    expect(loaded.containers[0]!.ports).toEqual([port(8080)]);
  });

  it('ignores a torn last line (never acknowledged) but refuses a broken line before good ones', async () => {
    const store = new StateStore(dir);
    const state: State = { ...emptyState(), containers: [container('web')] };
    await store.save(state);
    await store.append({ publish: { container: 'web', ports: [port(8080)] } }, () => ({ ...state, containers: [container('web', [port(8080)])] }));
    await appendFile(store.journalPath, '{"journal":"');
    expect((await new StateStore(dir).load()).containers[0]!.ports).toEqual([port(8080)]);

    await appendFile(store.journalPath, '\n{"also": "good"}\n');
    await expect(new StateStore(dir).load()).rejects.toThrow(/state\.journal: line 2 is not JSON/);
  });

  it('refuses a journal that names a container the state does not hold', async () => {
    const store = new StateStore(dir);
    await store.save({ ...emptyState(), containers: [container('web')] });
    await store.append({ publish: { container: 'ghost', ports: [port(8080)] } }, emptyState);
    await expect(new StateStore(dir).load()).rejects.toThrow(/journal names container ghost/);
  });

  it('a record that would make the journal big saves the whole state instead', async () => {
    const store = new StateStore(dir);
    const state: State = { ...emptyState(), containers: [container('web')] };
    await store.save(state);
    const many = Array.from({ length: 100_000 }, (_, i) => port(10_000 + (i % 50_000), 80 + Math.floor(i / 50_000)));
    state.containers[0]!.ports.push(...many.slice(0, 10));
    await store.append({ publish: { container: 'web', ports: many.slice(0, 10) } }, () => state);
    expect((await readFile(store.journalPath, 'utf8')).split('\n')).toHaveLength(2);
    for (const p of many.slice(10)) state.containers[0]!.ports.push(p);
    await store.append({ publish: { container: 'web', ports: many.slice(10) } }, () => state);
    await expect(readFile(store.journalPath, 'utf8'), 'the journal was folded into the snapshot').rejects.toThrow(/ENOENT/);
    expect(JSON.parse(await readFile(store.path, 'utf8')).containers[0].ports).toHaveLength(100_000);
    // And the next small change is a journal line again.
    state.containers[0]!.ports.pop();
    await store.append({ unpublish: { container: 'web', ports: [many[99_999]!] } }, () => state);
    expect((await readFile(store.journalPath, 'utf8')).split('\n')).toHaveLength(2);
    expect((await new StateStore(dir).load()).containers[0]!.ports).toHaveLength(99_999);
  });

  it('writes the whole state when no snapshot names a journal yet', async () => {
    const store = new StateStore(dir);
    const state: State = { ...emptyState(), containers: [container('web', [port(8080)])] };
    await store.append({ publish: { container: 'web', ports: [port(8080)] } }, () => state);
    expect(JSON.parse(await readFile(store.path, 'utf8')).containers[0].ports).toHaveLength(1);
    expect(await new StateStore(dir).load()).toEqual(plain(state));
  });
});
