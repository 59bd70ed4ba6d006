import { mkdir, open, readdir, readlink, stat, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';
import { run } from './exec.js';

/**
 * Network namespaces as bind-mounted files (what `ip netns add` does, but in
 * a folder of the daemon's own so several daemons never share names).
 */
export async function createNetns(path: string): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const fh = await open(path, 'wx');
  await fh.close();
  try {
    await run('unshare', [`--net=${path}`, '--', 'true']);
    await run('ip', ['link', 'set', 'dev', 'lo', 'up'], { netns: path });
  } catch (err) {
    await deleteNetns(path).catch(() => undefined);
    throw err;
  }
}

/** Unmounts and removes a namespace file; processes still in it are killed first. */
export async function deleteNetns(path: string): Promise<void> {
  await killProcessesInNetns(path);
  await run('umount', ['-l', path]).catch(() => undefined);
  await unlink(path).catch((err: NodeJS.ErrnoException) => {
    if (err.code !== 'ENOENT') throw err;
  });
}

/** True when the path is a live namespace (a mounted nsfs file), not a leftover placeholder. */
export async function netnsExists(path: string): Promise<boolean> {
  return (await netnsInode(path)) !== undefined;
}

/** The inode of a namespace file, as /proc/PID/ns/net links print it. */
export async function netnsInode(path: string): Promise<number | undefined> {
  try {
    const st = await stat(path);
    const self = await stat('/proc/self/ns/net');
    return st.dev === self.dev ? st.ino : undefined;
  } catch {
    return undefined;
  }
}

export async function processesInNetns(path: string): Promise<number[]> {
  const ino = await netnsInode(path);
  if (ino === undefined) return [];
  const wanted = `net:[${ino}]`;
  const pids: number[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    if (pid === process.pid) continue;
    try {
      if ((await readlink(`/proc/${entry}/ns/net`)) === wanted) pids.push(pid);
    } catch {
      // the process exited while we looked
    }
  }
  return pids;
}

export async function killProcessesInNetns(path: string): Promise<void> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const pids = await processesInNetns(path);
    if (pids.length === 0) return;
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    await new Promise((r) => setTimeout(r, 20));
  }
}
