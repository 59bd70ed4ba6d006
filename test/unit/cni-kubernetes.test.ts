import { describe, expect, it } from 'vitest';
import { hostGwRoutes, nodesFromList, podNetworkFor, routeChanges } from '../../src/cni/kubernetes.js';

const list = {
  kind: 'NodeList',
  items: [
    { metadata: { name: 'a' }, spec: { podCIDRs: ['10.244.0.0/24', 'fd00::/64'] }, status: { addresses: [{ type: 'InternalIP', address: 'fd00::1' }, { type: 'InternalIP', address: '192.168.1.10' }] } },
    { metadata: { name: 'b' }, spec: { podCIDR: '10.244.1.0/24' }, status: { addresses: [{ type: 'InternalIP', address: '192.168.1.11' }] } },
    { metadata: { name: 'c' }, spec: {}, status: { addresses: [{ type: 'InternalIP', address: '192.168.1.12' }] } },
    { metadata: { name: 'd' }, spec: { podCIDRs: ['10.244.3.0/24'] }, status: { addresses: [{ type: 'Hostname', address: 'd' }] } },
  ],
};

describe('Kubernetes node planning (cni kube-node)', () => {
  const nodes = nodesFromList(list);

  it('reads the NodeList: IPv4 pod CIDRs (podCIDRs, else podCIDR) and the IPv4 InternalIP', () => {
    expect(nodes).toEqual([
      { name: 'a', podCidrs: ['10.244.0.0/24'], internalIp: '192.168.1.10' },
      { name: 'b', podCidrs: ['10.244.1.0/24'], internalIp: '192.168.1.11' },
      { name: 'c', podCidrs: [], internalIp: '192.168.1.12' },
      { name: 'd', podCidrs: ['10.244.3.0/24'] },
    ]);
    expect(() => nodesFromList({})).toThrow(/no items/);
  });

  it("makes the node's pod network: its pod CIDR, the cluster CIDR routed, icc on", () => {
    expect(podNetworkFor(nodes[0]!, { network: 'pods', clusterCidr: '10.244.0.0/16', bridge: 'bp-pods' })).toEqual({
      name: 'pods',
      subnet: '10.244.0.0/24',
      routedCidrs: ['10.244.0.0/16'],
      icc: true,
      masquerade: true,
      bridgeName: 'bp-pods',
    });
    expect(() => podNetworkFor(nodes[2]!, { network: 'pods', clusterCidr: '10.244.0.0/16' })).toThrow(/no IPv4 pod CIDR/);
    expect(() => podNetworkFor(nodes[0]!, { network: 'pods', clusterCidr: '10.244.0.1/16' })).toThrow(/host bits/);
  });

  it('routes host-gw to every other node that has a pod CIDR and an address, and changes only what differs', () => {
    const desired = hostGwRoutes(nodes, 'a');
    expect(desired).toEqual([{ dst: '10.244.1.0/24', via: '192.168.1.11' }]);
    expect(routeChanges([], desired)).toEqual({ replace: desired, remove: [] });
    expect(routeChanges(desired, desired)).toEqual({ replace: [], remove: [] });
    expect(
      routeChanges(
        [
          { dst: '10.244.1.0/24', via: '192.168.1.99' },
          { dst: '10.244.9.0/24', via: '192.168.1.19' },
        ],
        desired,
      ),
    ).toEqual({ replace: desired, remove: [{ dst: '10.244.9.0/24', via: '192.168.1.19' }] });
  });
});
