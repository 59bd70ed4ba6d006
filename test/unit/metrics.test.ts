import { describe, expect, it } from 'vitest';
import type { Datapath, DatapathModel, DatapathStats } from '../../src/datapath/datapath.js';
import { Metrics, operationName, parseMetricsAddr, withoutGaugeTotals } from '../../src/metrics/metrics.js';

const model: DatapathModel = {
  networks: [
    { name: 'bridge', bridge: 'bridgeport0', subnet: '172.17.0.0/16', gateway: '172.17.0.1', icc: true, masquerade: true, internal: false },
    { name: 'inside', bridge: 'br-in', subnet: '172.20.0.0/16', gateway: '172.20.0.1', icc: true, masquerade: true, internal: true },
  ],
  endpoints: [{ container: 'web', network: 'bridge', bridge: 'bridgeport0', ip: '172.17.0.2', mac: '02:42:ac:11:00:02', hostIf: 'veth1' }],
  ports: [
    { container: 'web', network: 'bridge', bridge: 'bridgeport0', proto: 'tcp', hostIp: '0.0.0.0', hostPort: 8080, containerIp: '172.17.0.2', containerPort: 80 },
    { container: 'web', network: 'bridge', bridge: 'bridgeport0', proto: 'udp', hostIp: '127.0.0.1', hostPort: 5353, containerIp: '172.17.0.2', containerPort: 53 },
  ],
  links: [],
  uplinks: ['eth0'],
  firewall: [],
};

const stats: DatapathStats = {
  ports: [{ proto: 'tcp', hostIp: '0.0.0.0', hostPort: 8080, in: { packets: 10, bytes: 600 }, out: { packets: 8, bytes: 9000 } }],
  endpoints: [{ hostIf: 'veth1', rx: { packets: 11, bytes: 700 }, tx: { packets: 9, bytes: 9100 } }],
  masquerade: [{ bridge: 'bridgeport0', out: { packets: 3, bytes: 180 }, in: { packets: 2, bytes: 120 } }],
  drops: { icc_denied: { packets: 4, bytes: 128 } },
  conntrack: { published: 1, masquerade: 2, other: 0 },
  natPortsInUse: [{ bridge: 'bridgeport0', ports: 2 }],
};

const datapath = (s: DatapathStats): Datapath => ({
  name: 'iptables',
  stats: async () => s,
  apply: async () => undefined,
  teardown: async () => undefined,
  describe: async () => ({}),
});

describe('metrics', () => {
  it('labels datapath counters from the model; ports without counters are zero, unobservable reasons absent', async () => {
    const text = await new Metrics({ datapath: datapath(stats), reason: 'requested', model: () => model }).render();
    expect(text).toContain('bridgeport_datapath_info{datapath="iptables",reason="requested"} 1');
    expect(text).toContain(
      'bridgeport_published_port_packets_total{network="bridge",container="web",proto="tcp",host_ip="0.0.0.0",host_port="8080",container_port="80",direction="in"} 10',
    );
    expect(text).toContain(
      'bridgeport_published_port_bytes_total{network="bridge",container="web",proto="tcp",host_ip="0.0.0.0",host_port="8080",container_port="80",direction="out"} 9000',
    );
    expect(text).toContain(
      'bridgeport_published_port_packets_total{network="bridge",container="web",proto="udp",host_ip="127.0.0.1",host_port="5353",container_port="53",direction="in"} 0',
    );
    expect(text).toContain('bridgeport_endpoint_bytes_total{network="bridge",container="web",direction="tx"} 9100');
    expect(text).toContain('bridgeport_masquerade_packets_total{network="bridge",direction="in"} 2');
    expect(text).not.toContain('bridgeport_masquerade_packets_total{network="inside"');
    expect(text).toContain('bridgeport_nat_ports_in_use{network="bridge"} 2');
    expect(text).toContain('bridgeport_drops_total{reason="icc_denied"} 4');
    expect(text).not.toContain('reason="spoofed_source"');
    expect(text).not.toContain('bridgeport_xdp_packets_total{');
    expect(text).toContain('bridgeport_published_ports 2');
    expect(text).not.toMatch(/^nodejs_active_handles_total/m);
  });

  it('forgets series of ports that are gone on the next scrape', async () => {
    let current = model;
    const m = new Metrics({ datapath: datapath(stats), reason: 'auto', model: () => current });
    expect(await m.render()).toContain('host_port="5353"');
    current = { ...model, ports: model.ports.slice(0, 1) };
    expect(await m.render()).not.toContain('host_port="5353"');
  });

  it('names operations without their arguments', () => {
    expect(operationName('network create web')).toBe('network_create');
    expect(operationName('run web')).toBe('run');
    expect(operationName('connect net web')).toBe('connect');
    expect(operationName('firewall deny 10.0.0.0/8')).toBe('firewall_deny');
    expect(operationName('start daemon')).toBe('start_daemon');
  });

  it('parses --metrics-addr and refuses what is not HOST:PORT', () => {
    expect(parseMetricsAddr('')).toBeUndefined();
    expect(parseMetricsAddr('127.0.0.1:9477')).toEqual({ host: '127.0.0.1', port: 9477 });
    expect(parseMetricsAddr(':9477')).toEqual({ host: '0.0.0.0', port: 9477 });
    expect(parseMetricsAddr('[::1]:9477')).toEqual({ host: '::1', port: 9477 });
    expect(() => parseMetricsAddr('9477')).toThrow(/invalid --metrics-addr "9477"/);
    expect(() => parseMetricsAddr('host:70000')).toThrow(/invalid --metrics-addr/);
  });

  it('drops gauge families named *_total, keeps counters', () => {
    const text = ['# HELP a_total x', '# TYPE a_total gauge', 'a_total 3', '# HELP b_total y', '# TYPE b_total counter', 'b_total 1', ''].join('\n');
    expect(withoutGaugeTotals(text)).toBe(['# HELP b_total y', '# TYPE b_total counter', 'b_total 1', ''].join('\n'));
  });
});
