import { randomBytes } from 'node:crypto';
import { type FileHandle, mkdir, open, readFile, rename, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { BridgeportError } from '../model/errors.js';
import type { PortBinding } from '../model/port-spec.js';
import { emptyState, STATE_VERSION, type PublishedPort, type State } from '../model/state.js';

/**
 * A change to one container's published ports, small enough to append to the
 * journal instead of rewriting the whole state: with 100 000 ports published
 * the state file is megabytes, and adding one port must not cost that.
 */
export type JournalRecord =
  | { publish: { container: string; ports: PublishedPort[] } }
  | { unpublish: { container: string; ports: PortBinding[] } };

/** A record that would make the journal bigger than this writes the whole state instead. */
const COMPACT_BYTES = 8 << 20;

/**
 * The desired state on disk: `state.json`, written whole to a temp file,
 * fsynced, then renamed over the old one; and `state.journal`, the published
 * port changes made since, one JSON line each, fsynced before the operation
 * answers. The snapshot names its journal (a random id every record carries),
 * so records of an older journal are never replayed onto a newer snapshot,
 * even when the daemon died between the rename and the journal's truncation.
 */
export class StateStore {
  readonly path: string;
  readonly journalPath: string;
  private journalId = '';
  private journal: FileHandle | undefined;
  private journalBytes = 0;

  constructor(stateDir: string) {
    this.path = join(stateDir, 'state.json');
    this.journalPath = join(stateDir, 'state.journal');
  }

  async load(): Promise<State> {
    let text: string;
    try {
      text = await readFile(this.path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return emptyState();
      throw err;
    }
    const { journal, ...state } = JSON.parse(text) as State & { journal?: string };
    if (state.version !== STATE_VERSION) {
      throw new BridgeportError(`load state ${this.path}: version ${state.version}, expected ${STATE_VERSION}`, 'internal');
    }
    if (journal) await this.replay(state, journal);
    return state;
  }

  /** Applies the records of `id`'s journal; a torn last line (the daemon died writing it) was never acknowledged. */
  private async replay(state: State, id: string): Promise<void> {
    let text: string;
    try {
      text = await readFile(this.journalPath, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw err;
    }
    const lines = text.split('\n');
    for (const [i, line] of lines.entries()) {
      if (!line) continue;
      let entry: { journal: string } & JournalRecord;
      try {
        entry = JSON.parse(line);
      } catch {
        if (i === lines.length - 1) break;
        throw new BridgeportError(`load state ${this.journalPath}: line ${i + 1} is not JSON`, 'internal');
      }
      if (entry.journal !== id) continue;
      applyRecord(state, entry);
    }
  }

  async save(state: State): Promise<void> {
    await mkdir(dirname(this.path), { recursive: true });
    const id = randomBytes(8).toString('hex');
    const tmp = `${this.path}.tmp`;
    const fh = await open(tmp, 'w', 0o600);
    try {
      await fh.writeFile(`${JSON.stringify({ ...state, journal: id }, null, 2)}\n`);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, this.path);
    // The rename is durable only once the directory entry is.
    const dir = await open(dirname(this.path), 'r');
    try {
      await dir.sync();
    } finally {
      await dir.close();
    }
    // The new snapshot holds everything the old journal said.
    await this.journal?.close().catch(() => undefined);
    this.journal = undefined;
    this.journalId = id;
    this.journalBytes = 0;
    // Only tidiness: records of the old journal are never replayed onto this snapshot.
    await rm(this.journalPath, { force: true }).catch(() => undefined);
  }

  /**
   * Records one change: appended to the journal and fsynced, or, when there
   * is no journal yet or it would grow big, the whole state after the change
   * (`after`, only then made) saved.
   */
  async append(record: JournalRecord, after: () => State): Promise<void> {
    if (!this.journalId) return this.save(after());
    const line = `${JSON.stringify({ journal: this.journalId, ...record })}\n`;
    // The operation that would make the journal big pays for the whole save, not the small one after it.
    if (this.journalBytes + line.length > COMPACT_BYTES) return this.save(after());
    this.journal ??= await open(this.journalPath, 'a', 0o600);
    try {
      await this.journal.write(line);
      await this.journal.datasync();
    } catch (err) {
      // A half-written line must not be followed by good ones: start over with a whole snapshot next time.
      await this.journal.close().catch(() => undefined);
      this.journal = undefined;
      this.journalId = '';
      throw err;
    }
    this.journalBytes += Buffer.byteLength(line);
  }
}

const bindingKey = (b: PortBinding): string => `${b.proto}/${b.hostIp}:${b.hostPort}:${b.containerPort}`;

function applyRecord(state: State, record: JournalRecord): void {
  const name = 'publish' in record ? record.publish.container : record.unpublish.container;
  const c = state.containers.find((x) => x.name === name);
  if (!c) throw new BridgeportError(`load state: journal names container ${name}, which the state does not hold`, 'internal');
  if ('publish' in record) {
    for (const p of record.publish.ports) c.ports.push(p);
  } else {
    const gone = new Set(record.unpublish.ports.map(bindingKey));
    c.ports = c.ports.filter((p) => !gone.has(bindingKey(p)));
  }
}
