import { describe, expect, it } from 'vitest';
import { renderRules } from '../../src/datapath/iptables/render.js';
import { parseFirewallRule } from '../../src/model/firewall.js';

describe('firewall rules', () => {
  it('parses CIDRs, bare addresses and ports', () => {
    expect(parseFirewallRule('192.0.2.0/24')).toEqual({ cidr: '192.0.2.0/24' });
    expect(parseFirewallRule('192.0.2.7')).toEqual({ cidr: '192.0.2.7/32' });
    expect(parseFirewallRule('192.0.2.7', '53/udp')).toEqual({ cidr: '192.0.2.7/32', proto: 'udp', port: 53 });
    expect(parseFirewallRule('192.0.2.7', '8080')).toEqual({ cidr: '192.0.2.7/32', proto: 'tcp', port: 8080 });
  });

  it('names what is wrong', () => {
    expect(() => parseFirewallRule('192.0.2.1/24')).toThrow(/firewall: invalid CIDR "192.0.2.1\/24".*host bits/);
    expect(() => parseFirewallRule('300.0.0.1')).toThrow(/firewall: invalid CIDR "300.0.0.1"/);
    expect(() => parseFirewallRule('10.0.0.0/8', '0')).toThrow(/invalid --port "0"/);
    expect(() => parseFirewallRule('10.0.0.0/8', '80/icmp')).toThrow(/invalid --port "80\/icmp"/);
  });

  it('renders as raw drops on each uplink in the iptables datapath', () => {
    const rules = renderRules({
      networks: [],
      endpoints: [],
      ports: [],
      links: [],
      uplinks: ['eth0', 'eth1'],
      firewall: [{ cidr: '192.0.2.0/24' }, { cidr: '198.51.100.7/32', proto: 'udp', port: 53 }],
    });
    expect(rules.raw).toEqual([
      '-A BRIDGEPORT-RAW -s 192.0.2.0/24 -i eth0 -m comment --comment bridgeport:drop:deny_list -j DROP',
      '-A BRIDGEPORT-RAW -s 192.0.2.0/24 -i eth1 -m comment --comment bridgeport:drop:deny_list -j DROP',
      '-A BRIDGEPORT-RAW -s 198.51.100.7/32 -i eth0 -p udp -m udp --dport 53 -m comment --comment bridgeport:drop:deny_list -j DROP',
      '-A BRIDGEPORT-RAW -s 198.51.100.7/32 -i eth1 -p udp -m udp --dport 53 -m comment --comment bridgeport:drop:deny_list -j DROP',
    ]);
  });
});
