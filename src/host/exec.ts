import { execa } from 'execa';

/** A failed external command, keeping what is needed to diagnose it. */
export class CommandError extends Error {
  readonly argv: readonly string[];
  readonly exitCode: number | undefined;
  readonly stderr: string;

  constructor(argv: readonly string[], exitCode: number | undefined, stderr: string, cause?: unknown) {
    const detail = stderr.trim() || (cause instanceof Error ? cause.message : 'failed');
    super(`${argv.join(' ')}: exit ${exitCode ?? '?'}: ${detail}`, { cause });
    this.name = 'CommandError';
    this.argv = argv;
    this.exitCode = exitCode;
    this.stderr = stderr;
  }
}

export interface RunOptions {
  /** Text written to the command's stdin. */
  input?: string;
  /** Run inside this network namespace (a path such as /var/run/netns/x). */
  netns?: string;
  timeoutMs?: number;
  /** Most bytes of stdout kept (execa's default: 100 MB). */
  maxBuffer?: number;
}

/** Runs a command with an argument array (never a shell) and returns stdout. */
export async function run(cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<string> {
  const argv = opts.netns ? ['nsenter', `--net=${opts.netns}`, '--', cmd, ...args] : [cmd, ...args];
  const [file, ...rest] = argv as [string, ...string[]];
  const result = await execa(file, rest, {
    input: opts.input,
    reject: false,
    timeout: opts.timeoutMs ?? 30_000,
    ...(opts.maxBuffer ? { maxBuffer: opts.maxBuffer } : {}),
    stripFinalNewline: false,
  });
  if (result.exitCode !== 0 || result.failed) {
    throw new CommandError(argv, result.exitCode, String(result.stderr ?? ''), result.cause);
  }
  return String(result.stdout ?? '');
}

/** Like run, but reports success instead of throwing. */
export async function tryRun(cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<boolean> {
  try {
    await run(cmd, args, opts);
    return true;
  } catch {
    return false;
  }
}
