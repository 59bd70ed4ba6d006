import type { DatapathModel, DpPort } from '../datapath.js';

/**
 * The iptables rendering of the model: Docker 28's bridge rules (see
 * shared/reference/docker-bridge-rules.md) in chains of bridgeport's own, as
 * it behaves with --userland-proxy=false. Pure: model in, rule text out.
 */

export type TableName = 'filter' | 'nat' | 'raw' | 'mangle';

export const CHAINS = {
  user: 'BRIDGEPORT-USER',
  forward: 'BRIDGEPORT-FORWARD',
  ct: 'BRIDGEPORT-CT',
  internal: 'BRIDGEPORT-INTERNAL',
  bridge: 'BRIDGEPORT-BRIDGE',
  ports: 'BRIDGEPORT',
  dnat: 'BRIDGEPORT',
  postrouting: 'BRIDGEPORT-POSTROUTING',
  raw: 'BRIDGEPORT-RAW',
  countPre: 'BRIDGEPORT-COUNT-PRE',
  countPost: 'BRIDGEPORT-COUNT-POST',
  /** Never jumped to: holds the counts of drop rules that went away, so drops per reason only grow. */
  countRetired: 'BRIDGEPORT-COUNT-RETIRED',
} as const;

/**
 * Set in raw PREROUTING on packets that come from one of bridgeport's bridges,
 * so a drop of traffic to another network's container counts as
 * network_isolation rather than direct_access; cleared at the chain's end.
 */
export const FROM_BRIDGE_MARK = '0x100000/0x100000';

/** Chains bridgeport owns and rewrites whole on every sync (BRIDGEPORT-USER is the operator's). */
export const OWN_CHAINS: Record<TableName, readonly string[]> = {
  filter: [CHAINS.forward, CHAINS.ct, CHAINS.internal, CHAINS.bridge, CHAINS.ports],
  nat: [CHAINS.dnat, CHAINS.postrouting],
  raw: [CHAINS.countPre, CHAINS.raw],
  mangle: [CHAINS.countPost, CHAINS.countRetired],
};

/** Chains of earlier versions, in tables bridgeport no longer uses them in: removed with the jumps to them. */
export const FORMER_CHAINS: Partial<Record<TableName, readonly string[]>> = {
  // tx counting moved to raw, before the rules that drop.
  mangle: [CHAINS.countPre],
};

/** A jump from a built-in chain, in the exact form iptables-save prints it. */
export interface Jump {
  table: TableName;
  chain: string;
  rule: string;
  /** Insert at the top of the built-in chain rather than append. */
  first: boolean;
}

export const JUMPS: readonly Jump[] = [
  { table: 'filter', chain: 'FORWARD', rule: `-j ${CHAINS.user}`, first: true },
  { table: 'filter', chain: 'FORWARD', rule: `-j ${CHAINS.forward}`, first: true },
  { table: 'nat', chain: 'PREROUTING', rule: `-m addrtype --dst-type LOCAL -j ${CHAINS.dnat}`, first: true },
  // No loopback exclusion: host processes reach published ports on 127.0.0.1 too (no userland proxy).
  { table: 'nat', chain: 'OUTPUT', rule: `-m addrtype --dst-type LOCAL -j ${CHAINS.dnat}`, first: true },
  { table: 'nat', chain: 'POSTROUTING', rule: `-j ${CHAINS.postrouting}`, first: false },
  // Counting only (no verdicts): what containers send, before any rule drops it
  // (raw PREROUTING comes first), and what leaves after filtering (mangle POSTROUTING).
  { table: 'raw', chain: 'PREROUTING', rule: `-j ${CHAINS.countPre}`, first: true },
  { table: 'raw', chain: 'PREROUTING', rule: `-j ${CHAINS.raw}`, first: true },
  { table: 'mangle', chain: 'POSTROUTING', rule: `-j ${CHAINS.countPost}`, first: true },
];

export type RuleSet = Record<TableName, string[]>;

/** Comments name what a rule is for, so counters and readers can tell rules apart. */
const comment = (text: string): string => `-m comment --comment ${text}`;

const portMatch = (proto: string, flag: '--dport' | '--sport', port: number): string =>
  `-p ${proto} -m ${proto} ${flag} ${port}`;

const isLoopback = (ip: string): boolean => ip.startsWith('127.');

/**
 * Published-port flows (hairpin, also from another network) are DNATed: they
 * count as port traffic, never as masquerade, as in the eBPF datapath.
 */
const notDnat = '-m conntrack ! --ctstate DNAT';
const masqOut = (bridge: string): string => `bridgeport:count:masq-out:${bridge}`;

function dnatRule(p: DpPort): string {
  const dst = p.hostIp === '0.0.0.0' ? '' : `-d ${p.hostIp}/32 `;
  return `-A ${CHAINS.dnat} ${dst}${portMatch(p.proto, '--dport', p.hostPort)} ${comment(`bridgeport:port:${p.proto}:${p.hostIp}:${p.hostPort}`)} -j DNAT --to-destination ${p.containerIp}:${p.containerPort}`;
}

export function renderRules(model: DatapathModel): RuleSet {
  const filter: string[] = [];
  const nat: string[] = [];
  const raw: string[] = [];
  const nets = model.networks;

  // filter: the Docker 28 layout. FORWARD → USER, then FORWARD stage:
  // established replies, internal networks, per-bridge port policy, then egress/ICC.
  filter.push(`-A ${CHAINS.forward} -j ${CHAINS.ct}`);
  filter.push(`-A ${CHAINS.forward} -j ${CHAINS.internal}`);
  filter.push(`-A ${CHAINS.forward} -j ${CHAINS.bridge}`);
  for (const n of nets) {
    const br = n.bridge;
    filter.push(`-A ${CHAINS.ct} -o ${br} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT`);
    filter.push(`-A ${CHAINS.bridge} -o ${br} -j ${CHAINS.ports}`);
    if (n.internal) {
      filter.push(`-A ${CHAINS.internal} ! -s ${n.subnet} -o ${br} ${comment('bridgeport:drop:internal_network')} -j DROP`);
      filter.push(`-A ${CHAINS.internal} ! -d ${n.subnet} -i ${br} ${comment('bridgeport:drop:internal_network')} -j DROP`);
      filter.push(
        n.icc
          ? `-A ${CHAINS.forward} -i ${br} -o ${br} -j ACCEPT`
          : `-A ${CHAINS.forward} -i ${br} -o ${br} ${comment('bridgeport:drop:icc_denied')} -j DROP`,
      );
    } else if (n.icc) {
      filter.push(`-A ${CHAINS.forward} -i ${br} -j ACCEPT`);
    } else {
      filter.push(`-A ${CHAINS.forward} -i ${br} -o ${br} ${comment('bridgeport:drop:icc_denied')} -j DROP`);
      filter.push(`-A ${CHAINS.forward} -i ${br} ! -o ${br} -j ACCEPT`);
    }
  }

  // BRIDGEPORT (filter): link permits and published-port accepts first, the per-bridge DROP last.
  for (const l of model.links) {
    const br = l.bridge;
    filter.push(
      `-A ${CHAINS.ports} -s ${l.parentIp}/32 -d ${l.childIp}/32 -i ${br} -o ${br} ${portMatch(l.proto, '--dport', l.port)} ${comment(`bridgeport:link:${l.parent}:${l.child}`)} -j ACCEPT`,
    );
    filter.push(
      `-A ${CHAINS.ports} -s ${l.childIp}/32 -d ${l.parentIp}/32 -i ${br} -o ${br} ${portMatch(l.proto, '--sport', l.port)} ${comment(`bridgeport:link:${l.parent}:${l.child}`)} -j ACCEPT`,
    );
  }
  const accepted = new Set<string>();
  for (const p of model.ports) {
    const key = `${p.bridge}/${p.containerIp}/${p.proto}/${p.containerPort}`;
    if (accepted.has(key)) continue;
    accepted.add(key);
    filter.push(
      `-A ${CHAINS.ports} -d ${p.containerIp}/32 ! -i ${p.bridge} -o ${p.bridge} ${portMatch(p.proto, '--dport', p.containerPort)} -j ACCEPT`,
    );
  }
  for (const n of nets) {
    // A routed CIDR (a cluster's pods on other nodes) reaches every container, in on an uplink.
    for (const cidr of n.routedCidrs ?? []) {
      for (const up of model.uplinks) filter.push(`-A ${CHAINS.ports} -s ${cidr} -i ${up} -o ${n.bridge} ${comment(`bridgeport:routed:${n.name}`)} -j ACCEPT`);
    }
    filter.push(`-A ${CHAINS.ports} ! -i ${n.bridge} -o ${n.bridge} ${comment('bridgeport:drop:network_isolation')} -j DROP`);
  }

  // nat: masquerade per network, hairpin from host addresses and to a container's own port; DNAT per port.
  for (const n of nets) {
    if (n.internal) continue;
    if (n.masquerade) {
      // Toward a routed CIDR the container's own address leaves: neither counted nor masqueraded.
      for (const cidr of n.routedCidrs ?? []) nat.push(`-A ${CHAINS.postrouting} -s ${n.subnet} -d ${cidr} ! -o ${n.bridge} ${comment(`bridgeport:routed:${n.name}`)} -j RETURN`);
      // The first packet of a flow is masqueraded here, after mangle POSTROUTING has seen it
      // without its SNAT state: it is counted here, the flow's later packets in mangle.
      nat.push(`-A ${CHAINS.postrouting} -s ${n.subnet} ! -o ${n.bridge} ${notDnat} ${comment(masqOut(n.bridge))}`);
      nat.push(`-A ${CHAINS.postrouting} -s ${n.subnet} ! -o ${n.bridge} ${comment(`bridgeport:masquerade:${n.name}`)} -j MASQUERADE`);
    }
    nat.push(`-A ${CHAINS.postrouting} -o ${n.bridge} -m addrtype --src-type LOCAL -j MASQUERADE`);
  }
  const hairpins = new Set<string>();
  for (const p of model.ports) {
    const key = `${p.containerIp}/${p.proto}/${p.containerPort}`;
    if (hairpins.has(key)) continue;
    hairpins.add(key);
    nat.push(
      `-A ${CHAINS.postrouting} -s ${p.containerIp}/32 -d ${p.containerIp}/32 ${portMatch(p.proto, '--dport', p.containerPort)} -j MASQUERADE`,
    );
  }
  for (const p of model.ports) nat.push(dnatRule(p));

  // raw: no direct access to container addresses from outside their bridge, and
  // ports published on a loopback address are not reachable through other interfaces.
  // A network without masquerade is routed: its addresses are the ones replies come
  // back to, so (as in Docker's routed mode) only the filter rules above guard it.
  // The operator's deny list first, on the uplinks only (where XDP runs in eBPF mode).
  for (const r of model.firewall) {
    const port = r.port && r.proto ? ` ${portMatch(r.proto, '--dport', r.port)}` : '';
    for (const up of model.uplinks) {
      raw.push(`-A ${CHAINS.raw} -s ${r.cidr} -i ${up}${port} ${comment('bridgeport:drop:deny_list')} -j DROP`);
    }
  }
  const routed = new Set(nets.filter((n) => !n.masquerade && !n.internal).map((n) => n.name));
  // From a network's routed CIDRs, in on an uplink, its containers are reachable directly.
  for (const n of nets) {
    for (const cidr of n.routedCidrs ?? []) {
      for (const up of model.uplinks) raw.push(`-A ${CHAINS.raw} -s ${cidr} -d ${n.subnet} -i ${up} ${comment(`bridgeport:routed:${n.name}`)} -j ACCEPT`);
    }
  }
  const guarded = model.endpoints.filter((e) => !routed.has(e.network));
  if (guarded.length) for (const n of nets) raw.push(`-A ${CHAINS.raw} -i ${n.bridge} -j MARK --set-xmark ${FROM_BRIDGE_MARK}`);
  for (const e of guarded) {
    raw.push(
      `-A ${CHAINS.raw} -d ${e.ip}/32 ! -i ${e.bridge} -m mark --mark ${FROM_BRIDGE_MARK} ${comment('bridgeport:drop:network_isolation')} -j DROP`,
    );
    raw.push(`-A ${CHAINS.raw} -d ${e.ip}/32 ! -i ${e.bridge} ${comment('bridgeport:drop:direct_access')} -j DROP`);
  }
  for (const p of model.ports) {
    if (!isLoopback(p.hostIp)) continue;
    raw.push(
      `-A ${CHAINS.raw} -d ${p.hostIp}/32 ! -i lo ${portMatch(p.proto, '--dport', p.hostPort)} ${comment('bridgeport:drop:direct_access')} -j DROP`,
    );
  }
  if (guarded.length) raw.push(`-A ${CHAINS.raw} -j MARK --set-xmark 0x0/${FROM_BRIDGE_MARK.split('/')[1]}`);

  const counters = renderCounters(model);
  return { filter, nat, raw: [...counters.raw, ...raw], mangle: counters.mangle };
}

/**
 * Counting rules (no verdicts), one per counter, named by comment
 * `bridgeport:count:KIND:ID`; bytes are the IP packet's, as the eBPF datapath
 * counts them. `tx` is what a container sent, counted in raw PREROUTING before
 * any rule can drop it (as eBPF counts it before its policy); the rest is what
 * leaves after filtering, in mangle POSTROUTING. A masquerade `out` counter
 * also has a rule in nat (see renderRules): rules of one comment add up.
 * Connections from host processes are not port traffic (eBPF connects their
 * sockets without NAT).
 */
export function renderCounters(model: DatapathModel): { raw: string[]; mangle: string[] } {
  const pre: string[] = [];
  const post: string[] = [];
  for (const e of model.endpoints) {
    pre.push(`-A ${CHAINS.countPre} -s ${e.ip}/32 -i ${e.bridge} ${comment(`bridgeport:count:tx:${e.hostIf}`)}`);
    post.push(`-A ${CHAINS.countPost} -d ${e.ip}/32 -o ${e.bridge} ${comment(`bridgeport:count:rx:${e.hostIf}`)}`);
  }
  const seen = new Set<string>();
  for (const p of model.ports) {
    const id = `${p.proto}:${p.hostIp}:${p.hostPort}`;
    if (seen.has(id)) continue;
    seen.add(id);
    // In the option order iptables-save prints them.
    const orig = `${p.hostIp === '0.0.0.0' ? '' : `--ctorigdst ${p.hostIp} `}--ctorigdstport ${p.hostPort}`;
    post.push(
      `-A ${CHAINS.countPost} -d ${p.containerIp}/32 -o ${p.bridge} ${portMatch(p.proto, '--dport', p.containerPort)} -m conntrack --ctstate DNAT ${orig} --ctdir ORIGINAL -m addrtype ! --src-type LOCAL ${comment(`bridgeport:count:port-in:${id}`)}`,
    );
    post.push(
      `-A ${CHAINS.countPost} -s ${p.containerIp}/32 ${portMatch(p.proto, '--sport', p.containerPort)} -m conntrack --ctstate DNAT ${orig} --ctdir REPLY -m addrtype ! --dst-type LOCAL ${comment(`bridgeport:count:port-out:${id}`)}`,
    );
  }
  for (const n of model.networks) {
    if (!n.masquerade || n.internal) continue;
    // Packets of masqueraded flows leaving, but the first: it is not yet SNAT here
    // (nat POSTROUTING comes later) and is counted beside the MASQUERADE rule.
    post.push(
      `-A ${CHAINS.countPost} -s ${n.subnet} ! -o ${n.bridge} -m conntrack --ctstate SNAT --ctdir ORIGINAL ${notDnat} ${comment(masqOut(n.bridge))}`,
    );
    // Replies and related errors of masqueraded flows.
    post.push(
      `-A ${CHAINS.countPost} -d ${n.subnet} -o ${n.bridge} -m conntrack --ctstate SNAT --ctdir REPLY ${notDnat} ${comment(`bridgeport:count:masq-in:${n.bridge}`)}`,
    );
  }
  return { raw: pre, mangle: post };
}
