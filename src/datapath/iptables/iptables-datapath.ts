import { CommandError, run } from '../../host/exec.js';
import { interfaceSysctl, writeSysctl } from '../../host/sysctl.js';
import type { ApplyChange, Datapath, DatapathModel, DatapathStats, DpNetwork } from '../datapath.js';
import { countersFrom, parseConntrack } from './counters.js';
import { renderRules } from './render.js';
import { parseSave, restoreScript, type Saved, teardownScript } from './restore.js';

/**
 * Whole-table saves and restores grow with the published ports: at 100 000
 * ports (600 000 rules) iptables-save -c alone took longer than the default
 * 30 s, and its output is tens of MB.
 */
const BULK = { timeoutMs: 15 * 60_000, maxBuffer: 1 << 30 } as const;

export interface IptablesOptions {
  /** Set the FORWARD policy to DROP, as Docker does when it turned ip_forward on itself. */
  forwardDrop: boolean;
}

/** Bridge + iptables: the compatibility datapath, Docker's rules in bridgeport's chains. */
export class IptablesDatapath implements Datapath {
  readonly name = 'iptables' as const;
  private lastRuleCount = 0;
  private bridges = new Map<string, DpNetwork>();

  constructor(private readonly opts: IptablesOptions) {}

  static async probe(): Promise<void> {
    await run('iptables-save', ['-t', 'filter'], BULK);
  }

  async apply(model: DatapathModel, change?: ApplyChange): Promise<void> {
    // Bridged traffic between containers must pass iptables for ICC and hairpin
    // NAT; route_localnet lets host processes reach published ports on 127.0.0.1.
    await writeSysctl('net.bridge.bridge-nf-call-iptables', '1');
    for (const n of model.networks) await writeSysctl(interfaceSysctl(n.bridge, 'route_localnet'), '1');

    const rules = renderRules(model);
    const script = restoreScript(rules, await this.save(), { forwardDrop: this.opts.forwardDrop });
    await run('iptables-restore', ['--noflush', '--counters'], { input: script, ...BULK });
    this.lastRuleCount = rules.filter.length + rules.nat.length + rules.raw.length + rules.mangle.length;
    this.bridges = new Map(model.networks.map((n) => [n.bridge, n]));

    for (const p of change?.publishedUdp ?? []) {
      // A UDP flow that hit the host before the port was published keeps its
      // un-NATed conntrack entry and would bypass the new DNAT (moby#44742).
      await run('conntrack', ['-D', '-p', 'udp', '--orig-port-dst', String(p.hostPort)]).catch((err: unknown) => {
        // conntrack exits 1 when there was nothing to delete.
        if (!(err instanceof CommandError && err.exitCode === 1)) throw err;
      });
    }
  }

  async teardown(): Promise<void> {
    const script = teardownScript(await this.save());
    if (script) await run('iptables-restore', ['--noflush'], { input: script, ...BULK });
  }

  async describe(): Promise<Record<string, unknown>> {
    const version = (await run('iptables', ['--version']).catch(() => '')).trim();
    return { iptables: version, rules: this.lastRuleCount };
  }

  async stats(): Promise<DatapathStats> {
    // One save of every table: all rule counters of one instant. An empty
    // conntrack table prints no lines (exit 0; "0 flow entries" on stderr).
    const [saved, flows] = await Promise.all([this.save(), run('conntrack', ['-L'], BULK)]);
    return countersFrom(saved, parseConntrack(flows), [...this.bridges.values()]);
  }

  private async save(): Promise<Saved> {
    return parseSave(await run('iptables-save', ['-c'], BULK));
  }
}
