import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  CT_DNAT,
  CT_MASQUERADE,
  CT_REPLY,
  DIR_IN,
  DIR_OUT,
  DROP_REASONS,
  type DropReason,
  encodeCtKey,
  encodeCtValue,
  encodeEndpoint,
  encodeEpoch,
  encodeFirewallKey,
  encodeFirewallValue,
  encodeIpKey,
  encodeLinkKey,
  encodeNetwork,
  encodePublishedKey,
  encodePublishedValue,
  encodeSettings,
  encodeStatsKey,
  encodeU32,
  LAYOUT,
  LINK_DPORT,
  NET_ICC,
  NET_INTERNAL,
  NET_MASQUERADE,
  sumCounters,
} from '../../src/datapath/ebpf/abi.js';
import { type BpfMap, BpfObject, type BpfProgram, netnsCookie, structLayout } from '../../src/datapath/ebpf/handles.js';
import { OBJECT_DIR } from '../../src/datapath/ebpf/objects.js';
import { describePriv } from '../helpers/privileged.js';
import { arp, eth, icmpError, PROTO, parse, TCP, tcp, udp } from './packet.js';

/**
 * Each program of bpf/ run by BPF_PROG_TEST_RUN on tables of packets: input
 * frame → verdict, output frame, conntrack and drop counters. The maps are the
 * real ones (one pin folder shared by the objects, as the daemon loads them),
 * filled with a small fixed world.
 */

const ACT = { OK: 0, SHOT: 2, REDIRECT: 7 } as const;
const XDP = { DROP: 1, PASS: 2 } as const;

// The world: a host with uplink 198.18.0.1, a client outside, two networks.
const HOST = '198.18.0.1';
const CLIENT = '198.18.0.2';
const CLIENT_MAC = '02:00:00:00:00:02';
const UPLINK_MAC = '02:00:00:00:00:01';
const NET_A = { id: 10, subnet: '172.20.0.0', mask: '255.255.0.0', gateway: '172.20.0.1', bridgeMac: '02:00:00:00:00:10' };
const NET_B = { id: 20, subnet: '172.30.0.0', mask: '255.255.255.0', gateway: '172.30.0.1', bridgeMac: '02:00:00:00:00:20' };
// In a test run the skb's device is the namespace's loopback: ifindex 1 is "the container under test".
const WEB = { ip: '172.20.0.2', mac: '02:42:ac:14:00:02', ifindex: 1, networkId: NET_A.id };
const PEER = { ip: '172.20.0.3', mac: '02:42:ac:14:00:03', ifindex: 50, networkId: NET_A.id };
const OTHER = { ip: '172.30.0.2', mac: '02:42:ac:1e:00:02', ifindex: 60, networkId: NET_B.id };

let dir: string;
let pinDir: string;
const objects: BpfObject[] = [];
let uplink: BpfProgram;
let endpoint: BpfProgram;
let endpointEgress: BpfProgram;
let prefilter: BpfProgram;
const maps = new Map<string, BpfMap>();
const map = (name: string): BpfMap => {
  const m = maps.get(name);
  if (!m) throw new Error(`no map ${name}`);
  return m;
};

function drops(reason: DropReason): bigint {
  const perCpu = map('bp_drops').lookupPerCpu(encodeU32(DROP_REASONS.indexOf(reason)));
  return perCpu ? sumCounters(perCpu).packets : 0n;
}

function network(n: typeof NET_A, flags: number): void {
  map('bp_networks').update(encodeU32(n.id), encodeNetwork({ ...n, bridgeIfindex: n.id, flags }));
}

function endpointEntry(e: typeof WEB): void {
  map('bp_endpoints').update(encodeIpKey(e.ip), encodeEndpoint(e));
  map('bp_endpoint_by_if').update(encodeU32(e.ifindex), encodeEndpoint(e));
}

function publish(proto: 'tcp' | 'udp', hostIp: string, hostPort: number, containerPort: number, epochFrom = 1): void {
  map('bp_published').update(
    encodePublishedKey({ proto, hostIp, hostPort }),
    encodePublishedValue({ containerIp: WEB.ip, containerPort, flags: 0, ifindex: WEB.ifindex, networkId: NET_A.id, epochFrom, epochUntil: 0 }),
  );
}

/** Resets the world: every map emptied and filled again. */
function world(opts: { icc?: boolean; internal?: boolean } = {}): void {
  for (const name of ['bp_networks', 'bp_endpoints', 'bp_endpoint_by_if', 'bp_links', 'bp_local_addrs', 'bp_published', 'bp_ct', 'bp_firewall']) {
    const m = map(name);
    m.deleteBatch([...m.keys()]);
  }
  network(NET_A, (opts.icc === false ? 0 : NET_ICC) | NET_MASQUERADE | (opts.internal ? NET_INTERNAL : 0));
  network(NET_B, NET_ICC | NET_MASQUERADE);
  endpointEntry(WEB);
  endpointEntry(PEER);
  endpointEntry(OTHER);
  for (const a of [HOST, '127.0.0.1', NET_A.gateway, NET_B.gateway]) map('bp_local_addrs').update(encodeIpKey(a), encodeU32(1));
  map('bp_epoch').update(encodeU32(0), encodeEpoch(1));
  publish('tcp', '0.0.0.0', 8080, 80);
  publish('udp', '0.0.0.0', 5353, 53);
  publish('tcp', '127.0.0.1', 8082, 82);
  publish('tcp', '0.0.0.0', 9090, 90, 5); // live only from epoch 5
}

const ctKeys = (): string[] => [...map('bp_ct').keys()].map((k) => k.toString('hex')).sort();
const ctHas = (k: { saddr: string; daddr: string; sport: number; dport: number; proto: number }): boolean =>
  map('bp_ct').lookup(encodeCtKey(k)) !== undefined;

const fromClient = (l3: Buffer): Buffer => eth(UPLINK_MAC, CLIENT_MAC, l3);
const fromWeb = (l3: Buffer): Buffer => eth(NET_A.bridgeMac, WEB.mac, l3);

describePriv('BPF programs on tables of packets (BPF_PROG_TEST_RUN)', () => {
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'bp-progtest-'));
    pinDir = join(dir, 'bpf');
    await mkdir(pinDir);
    await execa('mount', ['-t', 'bpf', 'bpf', pinDir]);
    const settings = encodeSettings({ netnsCookie: netnsCookie(), snatPortFirst: 61000, snatPortLast: 65535, flags: 0 });
    const load = (name: string): BpfObject => {
      const obj = BpfObject.open(join(OBJECT_DIR, `${name}.o`), { pinDir, rodata: settings });
      objects.push(obj);
      obj.load();
      return obj;
    };
    uplink = load('tc_uplink').program('bp_uplink_ingress');
    const ep = load('tc_endpoint');
    endpoint = ep.program('bp_endpoint_ingress');
    endpointEgress = ep.program('bp_endpoint_egress');
    const xdp = load('xdp_prefilter');
    prefilter = xdp.program('bp_prefilter');
    for (const obj of objects) for (const m of obj.maps()) maps.set(m.name, m);
  });

  afterAll(async () => {
    for (const obj of objects) obj.close();
    if (pinDir && existsSync(pinDir)) await execa('umount', [pinDir], { reject: false });
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  describe('tc ingress on the uplink', () => {
    beforeEach(() => world());

    it('DNATs a new flow to a published port into the container, tracks it, and follows it', () => {
      const syn = fromClient(tcp({ src: CLIENT, dst: HOST, sport: 40000, dport: 8080, flags: TCP.SYN }));
      const r = uplink.testRun({ data: syn });
      expect(r.retval).toBe(ACT.REDIRECT);
      const out = parse(r.data);
      expect(out).toMatchObject({ src: CLIENT, sport: 40000, dst: WEB.ip, dport: 80, dstMac: WEB.mac, srcMac: NET_A.bridgeMac });
      expect(out.ipChecksumOk && out.l4ChecksumOk).toBe(true);
      expect(ctHas({ saddr: CLIENT, daddr: HOST, sport: 40000, dport: 8080, proto: PROTO.tcp })).toBe(true);
      expect(ctHas({ saddr: WEB.ip, daddr: CLIENT, sport: 80, dport: 40000, proto: PROTO.tcp })).toBe(true);

      // Unpublish behind its back: the tracked flow still goes through (conntrack, not the lookup).
      map('bp_published').delete(encodePublishedKey({ proto: 'tcp', hostIp: '0.0.0.0', hostPort: 8080 }));
      const ack = uplink.testRun({ data: fromClient(tcp({ src: CLIENT, dst: HOST, sport: 40000, dport: 8080, flags: TCP.ACK })) });
      expect(ack.retval).toBe(ACT.REDIRECT);
      expect(parse(ack.data)).toMatchObject({ dst: WEB.ip, dport: 80, l4ChecksumOk: true });
    });

    it('counts L3 packets and bytes per published port, endpoint and masquerading network', () => {
      for (const name of ['bp_port_stats', 'bp_endpoint_stats', 'bp_masq_stats']) map(name).deleteBatch([...map(name).keys()]);
      const counter = (name: string, key: Buffer) => {
        const v = map(name).lookupPerCpu(key);
        return v ? sumCounters(v) : { packets: 0n, bytes: 0n };
      };
      const portKey = (dir: number) => Buffer.from([...encodePublishedKey({ proto: 'udp', hostIp: '0.0.0.0', hostPort: 5353 }).subarray(0, 7), dir]);
      for (let i = 0; i < 3; i++) {
        expect(uplink.testRun({ data: fromClient(udp({ src: CLIENT, dst: HOST, sport: 5000, dport: 5353, data: Buffer.alloc(100) })) }).retval).toBe(ACT.REDIRECT);
      }
      // 20 (IP) + 8 (UDP) + 100: the Ethernet header is not counted.
      expect(counter('bp_port_stats', portKey(DIR_IN))).toEqual({ packets: 3n, bytes: 3n * 128n });
      expect(counter('bp_endpoint_stats', encodeStatsKey(WEB.ifindex, DIR_IN))).toEqual({ packets: 3n, bytes: 3n * 128n });
      // The container's reply through the veth: tx, and the port's out.
      endpoint.testRun({ data: fromWeb(udp({ src: WEB.ip, dst: CLIENT, sport: 53, dport: 5000, data: Buffer.alloc(10) })) });
      expect(counter('bp_port_stats', portKey(DIR_OUT))).toEqual({ packets: 1n, bytes: 38n });
      expect(counter('bp_endpoint_stats', encodeStatsKey(WEB.ifindex, DIR_OUT))).toEqual({ packets: 1n, bytes: 38n });
      expect(counter('bp_masq_stats', encodeStatsKey(NET_A.id, DIR_OUT)).packets).toBe(0n);

      // Delivered by the bridge (tc egress of the host-side veth): only what is addressed to the container counts.
      const rx = counter('bp_endpoint_stats', encodeStatsKey(WEB.ifindex, DIR_IN));
      for (const dst of [WEB.ip, '224.0.0.1', '172.20.255.255']) {
        expect(endpointEgress.testRun({ data: eth(WEB.mac, NET_A.bridgeMac, udp({ src: NET_A.gateway, dst, sport: 1, dport: 2 })) }).retval).toBe(ACT.OK);
      }
      expect(counter('bp_endpoint_stats', encodeStatsKey(WEB.ifindex, DIR_IN))).toEqual({ packets: rx.packets + 1n, bytes: rx.bytes + 32n });

      // What the daemon reads per scrape: a batched dump, the same as a walk key by key, small chunks included.
      const walk = (name: string) => [...map(name).entries()].map(([k, v]) => `${k.toString('hex')}=${v.toString('hex')}`).sort();
      const dumped = (name: string, chunk: number) => map(name).dump(chunk).map(([k, v]) => `${k.toString('hex')}=${v.toString('hex')}`).sort();
      for (const name of ['bp_port_stats', 'bp_endpoint_stats', 'bp_ct', 'bp_published']) {
        expect(dumped(name, 1)).toEqual(walk(name));
        expect(dumped(name, 4096)).toEqual(walk(name));
      }
      expect(walk('bp_ct').length).toBeGreaterThan(0);
    });

    it('DNATs UDP with a valid checksum', () => {
      const r = uplink.testRun({ data: fromClient(udp({ src: CLIENT, dst: HOST, sport: 5000, dport: 5353 })) });
      expect(r.retval).toBe(ACT.REDIRECT);
      expect(parse(r.data)).toMatchObject({ dst: WEB.ip, dport: 53, ipChecksumOk: true, l4ChecksumOk: true });
    });

    it('passes unpublished ports, entries not live yet, non-IPv4 and truncated packets to the stack untouched', () => {
      const cases = [
        fromClient(tcp({ src: CLIENT, dst: HOST, sport: 40001, dport: 22, flags: TCP.SYN })),
        fromClient(tcp({ src: CLIENT, dst: HOST, sport: 40002, dport: 9090, flags: TCP.SYN })),
        arp({ senderMac: CLIENT_MAC, senderIp: CLIENT, targetIp: HOST }),
        fromClient(tcp({ src: CLIENT, dst: HOST, sport: 40003, dport: 8080, flags: TCP.SYN })).subarray(0, 14 + 20 + 8),
      ];
      for (const data of cases) {
        const r = uplink.testRun({ data });
        expect(r.retval).toBe(ACT.OK);
        expect(r.data.equals(data)).toBe(true);
      }
      expect(ctKeys()).toEqual([]);
    });

    it('drops direct access to a container address, and a 127.0.0.1-bound port reached from outside', () => {
      const direct = drops('direct_access');
      const r = uplink.testRun({ data: fromClient(tcp({ src: CLIENT, dst: WEB.ip, sport: 40004, dport: 80, flags: TCP.SYN })) });
      expect(r.retval).toBe(ACT.SHOT);
      const loop = uplink.testRun({ data: fromClient(tcp({ src: CLIENT, dst: '127.0.0.1', sport: 40005, dport: 8082, flags: TCP.SYN })) });
      expect(loop.retval).toBe(ACT.SHOT);
      expect(drops('direct_access')).toBe(direct + 2n);
    });

    it('brings replies of a masqueraded flow back to the container, and the ICMP errors about it', () => {
      // As masquerade() in tc_endpoint.c leaves them: web:40000 → client:9 went out as host:61000.
      map('bp_ct').update(
        encodeCtKey({ saddr: CLIENT, daddr: HOST, sport: 9, dport: 61000, proto: PROTO.udp }),
        encodeCtValue({
          lastSeenNs: 0n,
          newSaddr: '0.0.0.0',
          newDaddr: WEB.ip,
          newSport: 0,
          newDport: 40000,
          ifindex: WEB.ifindex,
          origin: { hostIp: '0.0.0.0', hostPort: 0, proto: 0 },
          flags: CT_DNAT | CT_REPLY | CT_MASQUERADE,
          tcpFlags: 0,
        }),
      );
      const reply = uplink.testRun({ data: fromClient(udp({ src: CLIENT, dst: HOST, sport: 9, dport: 61000 })) });
      expect(reply.retval).toBe(ACT.REDIRECT);
      expect(parse(reply.data)).toMatchObject({ src: CLIENT, sport: 9, dst: WEB.ip, dport: 40000, dstMac: WEB.mac, l4ChecksumOk: true });

      // The client's port unreachable quotes what it got: host:61000 → client:9.
      const quoted = udp({ src: HOST, dst: CLIENT, sport: 61000, dport: 9 });
      const err = uplink.testRun({ data: fromClient(icmpError({ src: CLIENT, dst: HOST, type: 3, code: 3, quoted })) });
      expect(err.retval).toBe(ACT.REDIRECT);
      const out = parse(err.data);
      expect(out).toMatchObject({ src: CLIENT, dst: WEB.ip, ipChecksumOk: true, l4ChecksumOk: true });
      expect(out.icmp).toEqual({ type: 3, code: 3, quoted: { src: WEB.ip, dst: CLIENT, sport: 40000, dport: 9, ipChecksumOk: true } });

      // An error about no flow of ours passes untouched.
      const stray = fromClient(icmpError({ src: CLIENT, dst: HOST, type: 3, code: 3, quoted: udp({ src: HOST, dst: CLIENT, sport: 1234, dport: 9 }) }));
      const s = uplink.testRun({ data: stray });
      expect(s.retval).toBe(ACT.OK);
      expect(s.data.equals(stray)).toBe(true);
    });
  });

  describe("tc ingress on a container's veth", () => {
    it('drops a spoofed source MAC, source IP or ARP claim; passes an ARP probe', () => {
      world();
      const spoofed = drops('spoofed_source');
      const cases: [Buffer, number][] = [
        [eth(NET_A.bridgeMac, '02:42:de:ad:be:ef', udp({ src: WEB.ip, dst: CLIENT, sport: 1, dport: 9 })), ACT.SHOT],
        [fromWeb(udp({ src: '172.20.0.200', dst: CLIENT, sport: 1, dport: 9 })), ACT.SHOT],
        [arp({ senderMac: WEB.mac, senderIp: PEER.ip, targetIp: NET_A.gateway }), ACT.SHOT],
        [arp({ senderMac: WEB.mac, senderIp: '0.0.0.0', targetIp: WEB.ip }), ACT.OK],
        [arp({ senderMac: WEB.mac, senderIp: WEB.ip, targetIp: NET_A.gateway }), ACT.OK],
      ];
      for (const [data, verdict] of cases) expect(endpoint.testRun({ data }).retval).toBe(verdict);
      expect(drops('spoofed_source')).toBe(spoofed + 3n);
    });

    it('delivers to a peer on the same network by redirect; icc=false drops it unless a link permits the port', () => {
      world();
      const toPeer = fromWeb(tcp({ src: WEB.ip, dst: PEER.ip, sport: 41000, dport: 5432, flags: TCP.SYN }));
      const r = endpoint.testRun({ data: toPeer });
      expect(r.retval).toBe(ACT.REDIRECT);
      expect(parse(r.data)).toMatchObject({ dstMac: PEER.mac, srcMac: WEB.mac, dst: PEER.ip, l4ChecksumOk: true });

      world({ icc: false });
      const denied = drops('icc_denied');
      expect(endpoint.testRun({ data: toPeer }).retval).toBe(ACT.SHOT);
      expect(drops('icc_denied')).toBe(denied + 1n);

      map('bp_links').update(encodeLinkKey({ srcIp: WEB.ip, dstIp: PEER.ip, port: 5432, proto: 'tcp', direction: LINK_DPORT }), Buffer.alloc(4));
      expect(endpoint.testRun({ data: toPeer }).retval).toBe(ACT.REDIRECT);
      const otherPort = fromWeb(tcp({ src: WEB.ip, dst: PEER.ip, sport: 41000, dport: 22, flags: TCP.SYN }));
      expect(endpoint.testRun({ data: otherPort }).retval).toBe(ACT.SHOT);
    });

    it('drops traffic to another network, and out of an internal network', () => {
      world();
      const isolation = drops('network_isolation');
      expect(endpoint.testRun({ data: fromWeb(tcp({ src: WEB.ip, dst: OTHER.ip, sport: 41001, dport: 80, flags: TCP.SYN })) }).retval).toBe(ACT.SHOT);
      expect(drops('network_isolation')).toBe(isolation + 1n);

      world({ internal: true });
      const internal = drops('internal_network');
      expect(endpoint.testRun({ data: fromWeb(udp({ src: WEB.ip, dst: '8.8.8.8', sport: 41002, dport: 53 })) }).retval).toBe(ACT.SHOT);
      expect(drops('internal_network')).toBe(internal + 1n);
    });

    it('hairpins a container to its own published port, with the gateway as source', () => {
      world();
      const r = endpoint.testRun({ data: fromWeb(tcp({ src: WEB.ip, dst: HOST, sport: 42000, dport: 8080, flags: TCP.SYN })) });
      expect(r.retval).toBe(ACT.REDIRECT);
      expect(parse(r.data)).toMatchObject({ src: NET_A.gateway, sport: 42000, dst: WEB.ip, dport: 80, dstMac: WEB.mac, ipChecksumOk: true, l4ChecksumOk: true });
    });

    it('rewrites replies of a published flow to the host port, and the container ICMP errors about it', () => {
      world();
      // The client's flow in through the uplink creates the entries.
      expect(uplink.testRun({ data: fromClient(udp({ src: CLIENT, dst: HOST, sport: 5000, dport: 5353 })) }).retval).toBe(ACT.REDIRECT);

      const reply = endpoint.testRun({ data: fromWeb(udp({ src: WEB.ip, dst: CLIENT, sport: 53, dport: 5000 })) });
      // Routed out by a FIB lookup in this namespace: redirected, or left to the stack.
      expect([ACT.OK, ACT.REDIRECT]).toContain(reply.retval);
      expect(parse(reply.data)).toMatchObject({ src: HOST, sport: 5353, dst: CLIENT, dport: 5000, ipChecksumOk: true, l4ChecksumOk: true });

      // Nothing listens on 53 after all: the container's port unreachable quotes client:5000 → web:53.
      const quoted = udp({ src: CLIENT, dst: WEB.ip, sport: 5000, dport: 53 });
      const err = endpoint.testRun({ data: fromWeb(icmpError({ src: WEB.ip, dst: CLIENT, type: 3, code: 3, quoted })) });
      expect([ACT.OK, ACT.REDIRECT]).toContain(err.retval);
      const out = parse(err.data);
      expect(out).toMatchObject({ src: HOST, dst: CLIENT, ipChecksumOk: true, l4ChecksumOk: true });
      expect(out.icmp?.quoted).toEqual({ src: CLIENT, dst: HOST, sport: 5000, dport: 5353, ipChecksumOk: true });
    });
  });

  describe('XDP prefilter on the uplink', () => {
    it('drops sources of the deny list (whole prefix, or one port) and passes the rest', () => {
      world();
      map('bp_firewall').update(encodeFirewallKey({ addr: '203.0.113.0', prefixLen: 24, port: 0, proto: 0 }), encodeFirewallValue());
      map('bp_firewall').update(encodeFirewallKey({ addr: CLIENT, prefixLen: 32, port: 22, proto: PROTO.tcp }), encodeFirewallValue());
      const denied = drops('deny_list');
      const run = (l3: Buffer) => prefilter.testRun({ data: eth(UPLINK_MAC, CLIENT_MAC, l3) }).retval;
      expect(run(udp({ src: '203.0.113.9', dst: HOST, sport: 1, dport: 53 }))).toBe(XDP.DROP);
      expect(run(tcp({ src: '203.0.113.9', dst: HOST, sport: 1, dport: 8080, flags: TCP.SYN }))).toBe(XDP.DROP);
      expect(run(tcp({ src: CLIENT, dst: HOST, sport: 1, dport: 22, flags: TCP.SYN }))).toBe(XDP.DROP);
      expect(run(tcp({ src: CLIENT, dst: HOST, sport: 1, dport: 8080, flags: TCP.SYN }))).toBe(XDP.PASS);
      expect(run(udp({ src: CLIENT, dst: HOST, sport: 1, dport: 22 }))).toBe(XDP.PASS);
      expect(run(udp({ src: '198.51.100.1', dst: HOST, sport: 1, dport: 53 }))).toBe(XDP.PASS);
      expect(drops('deny_list')).toBe(denied + 3n);
    });
  });

  describe('ABI: the TypeScript codecs and the objects agree', () => {
    it('every struct of bridgeport_abi.h has the size and field offsets of LAYOUT in the BTF', () => {
      const candidates = ['tc_endpoint', 'tc_uplink', 'xdp_prefilter', 'sock'].map((o) => join(OBJECT_DIR, `${o}.o`));
      for (const [struct, layout] of Object.entries(LAYOUT)) {
        let found: ReturnType<typeof structLayout> | undefined;
        for (const path of candidates) {
          try {
            found = structLayout(path, struct);
            break;
          } catch {
            // not in this object's BTF
          }
        }
        expect(found, `struct ${struct} in no object's BTF`).toBeDefined();
        expect({ struct, size: found!.size }).toEqual({ struct, size: layout.size });
        const btf = Object.fromEntries(found!.members.map((m) => [m.name, m.offset]));
        expect({ struct, ...btf }).toEqual({ struct, ...layout.fields });
      }
    });
  });
});
