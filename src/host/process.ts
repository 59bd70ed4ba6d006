import { spawn } from 'node:child_process';
import { access, constants, open, readFile } from 'node:fs/promises';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const SANDBOX_INIT = fileURLToPath(new URL('../../libexec/bridgeport-sandbox-init', import.meta.url));

/** Resolves a command like execvp would, so `run` can refuse a missing executable up front. */
export async function resolveExecutable(cmd: string): Promise<string | undefined> {
  const candidates = cmd.includes('/') ? [cmd] : (process.env.PATH ?? '').split(delimiter).map((d) => join(d, cmd));
  for (const c of candidates) {
    try {
      await access(c, constants.X_OK);
      return c;
    } catch {
      // keep looking
    }
  }
  return undefined;
}

export interface StartOptions {
  /** Network namespace path; undefined runs in the daemon's own namespace (--net host). */
  sandbox: string | undefined;
  hostsPath: string;
  hostname: string;
  cmd: string[];
  logPath: string;
}

/**
 * Starts a container's command in the background: in its network namespace,
 * with mount and UTS namespaces of its own for /etc/hosts and the hostname.
 * nsenter, unshare and the init script all exec, so the PID is the command's.
 */
export async function startProcess(o: StartOptions): Promise<{ pid: number; start: string }> {
  const log = await open(o.logPath, 'a');
  try {
    const inner = ['unshare', '--mount', '--uts', '--propagation', 'private', '--', SANDBOX_INIT, o.hostsPath, o.hostname, ...o.cmd];
    const argv = o.sandbox ? ['nsenter', `--net=${o.sandbox}`, '--', ...inner] : inner;
    const child = spawn(argv[0]!, argv.slice(1), { detached: true, stdio: ['ignore', log.fd, log.fd] });
    const pid = await new Promise<number>((resolve, reject) => {
      child.once('error', reject);
      child.once('spawn', () => resolve(child.pid!));
    });
    child.unref();
    return { pid, start: (await processStart(pid)) ?? '' };
  } finally {
    await log.close();
  }
}

/** Field 22 of /proc/PID/stat: start time in clock ticks, unique per PID incarnation. */
export async function processStart(pid: number): Promise<string | undefined> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

export async function isRunning(pid: number | undefined, start: string | undefined): Promise<boolean> {
  if (!pid) return false;
  const now = await processStart(pid);
  if (now === undefined || now !== start) return false;
  // A zombie has exited; it only waits for its parent.
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
  return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
}

/** Kills a container's process group and waits until it is gone. */
export async function stopProcess(pid: number | undefined, start: string | undefined): Promise<void> {
  if (!(await isRunning(pid, start))) return;
  for (const target of [-pid!, pid!]) {
    try {
      process.kill(target, 'SIGKILL');
    } catch {
      // group or process already gone
    }
  }
  for (let i = 0; i < 100 && (await isRunning(pid, start)); i++) await new Promise((r) => setTimeout(r, 20));
}
