import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { type CommandResult, nsenterArgv } from './topology.js';

export interface ProbeResult {
  ok: boolean;
  reply?: string;
  error?: string;
  /** "ip:port" the server saw as its peer, parsed from reply. */
  peer?: string;
  /** "ip:port" the connection arrived at on the server, parsed from reply. */
  local?: string;
}

export type Runner = (cmd: string, args: string[]) => Promise<CommandResult>;

export const FIXTURES: { echoServer: string; probe: string } = {
  echoServer: fileURLToPath(new URL('../fixtures/echo-server.mjs', import.meta.url)),
  probe: fileURLToPath(new URL('../fixtures/probe.mjs', import.meta.url)),
};

export interface ProbeOptions {
  timeoutMs?: number;
  sourcePort?: number;
  /** UDP payload bytes (the echo server's reply is as long). */
  size?: number;
}

function probeArgs(proto: 'tcp' | 'udp', host: string, port: number, opts: ProbeOptions, count: number): string[] {
  const args = [FIXTURES.probe, proto, host, String(port)];
  if (opts.timeoutMs !== undefined) args.push('--timeout', String(opts.timeoutMs));
  if (opts.sourcePort !== undefined) args.push('--source-port', String(opts.sourcePort));
  if (count !== 1) args.push('--count', String(count));
  if (opts.size !== undefined) args.push('--size', String(opts.size));
  return args;
}

function parseProbeLine(text: string): ProbeResult {
  const raw = JSON.parse(text) as { ok: boolean; reply?: string; error?: string };
  const result: ProbeResult = { ok: raw.ok };
  if (raw.reply !== undefined) {
    result.reply = raw.reply;
    const m = /peer=(\S+) local=(\S+)/.exec(raw.reply);
    if (m) {
      result.peer = m[1];
      result.local = m[2];
    }
  }
  if (raw.error !== undefined) result.error = raw.error;
  return result;
}

/** Runs probe.mjs `count` times in one process and parses each JSON line. */
export async function probeMany(
  run: Runner,
  proto: 'tcp' | 'udp',
  host: string,
  port: number,
  count: number,
  opts: ProbeOptions = {},
): Promise<ProbeResult[]> {
  // The probe itself reports network failures in JSON; a non-zero exit or
  // missing output is a broken harness, which must not read as "unreachable".
  const r = await run(process.execPath, probeArgs(proto, host, port, opts, count));
  const lines = r.stdout.split('\n').filter((l) => l.trim().length > 0);
  if (r.exitCode !== 0 || lines.length !== count) {
    throw new Error(
      `probe ${proto} ${host}:${port} failed to run: exit ${r.exitCode}\n--- stdout ---\n${r.stdout}\n--- stderr ---\n${r.stderr}`,
    );
  }
  try {
    return lines.map(parseProbeLine);
  } catch (err) {
    throw new Error(`probe ${proto} ${host}:${port} printed non-JSON (${String(err)}):\n${r.stdout}`);
  }
}

/** One probe; `run` decides where it runs (e.g. topo.inClient). */
export async function probe(
  run: Runner,
  proto: 'tcp' | 'udp',
  host: string,
  port: number,
  opts: ProbeOptions = {},
): Promise<ProbeResult> {
  const [result] = await probeMany(run, proto, host, port, 1, opts);
  return result!;
}

export interface EchoServer {
  stop(): Promise<void>;
}

/** Starts echo-server.mjs inside nsPath; resolves once it printed `listening` (max 5 s). */
export async function startEchoServer(
  nsPath: string,
  specs: string[],
  opts: { bind?: string } = {},
): Promise<EchoServer> {
  const serverArgs = [FIXTURES.echoServer, ...(opts.bind ? ['--bind', opts.bind] : []), ...specs];
  const argv = nsenterArgv(nsPath, process.execPath, serverArgs);
  const proc = execa(argv[0]!, argv.slice(1), { reject: false, buffer: false, stdin: 'ignore' });
  let output = '';
  let exited: string | undefined;
  const ended = proc.then(
    (r) => {
      exited = r.exitCode !== undefined ? `exit ${r.exitCode}` : `signal ${r.signal ?? '?'}`;
    },
    (err: unknown) => {
      exited = String(err);
    },
  );
  proc.stdout.setEncoding('utf8');
  proc.stderr.setEncoding('utf8');
  proc.stderr.on('data', (d: string) => {
    output += d;
  });

  await new Promise<void>((resolve, reject) => {
    let stdout = '';
    let settled = false;
    const fail = (why: string) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      proc.kill('SIGKILL');
      reject(new Error(`echo server ${specs.join(' ')} in ${nsPath}: ${why}\n${stdout}${output}`));
    };
    const timer = setTimeout(() => fail('not listening after 5 s'), 5_000);
    proc.stdout.on('data', (d: string) => {
      stdout += d;
      if (!settled && /^listening$/m.test(stdout)) {
        settled = true;
        clearTimeout(timer);
        resolve();
      }
    });
    void ended.then(() => {
      // Let pending stderr land before reporting.
      setImmediate(() => fail(`ended before listening (${exited})`));
    });
  });

  return {
    async stop() {
      if (exited !== undefined) return;
      proc.kill('SIGTERM');
      const slow = await Promise.race([ended.then(() => false), new Promise<boolean>((r) => setTimeout(r, 5_000, true))]);
      if (slow) {
        proc.kill('SIGKILL');
        await ended;
      }
    },
  };
}
