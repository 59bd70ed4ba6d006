import { describe, expect, it } from 'vitest';
import { addResult, CniError, callerVersion, parseArgs, parseConfig, portMappings, renderConflist, staticIp, staticMac } from '../../src/cni/protocol.js';

const codeOf = (fn: () => unknown): number | undefined => {
  try {
    fn();
  } catch (err) {
    if (err instanceof CniError) return err.code;
    throw err;
  }
  return undefined;
};

describe('CNI protocol translation', () => {
  it('reads the configuration: versions, names, bridgeport keys, runtime keys passed, unknown keys refused', () => {
    const c = parseConfig(JSON.stringify({ cniVersion: '1.0.0', name: 'pods', type: 'bridgeport', subnet: '10.1.0.0/24', icc: false, capabilities: { portMappings: true }, cniVersions: ['1.0.0'] }));
    expect(c.network).toBe('pods');
    expect(c.create).toMatchObject({ subnet: '10.1.0.0/24', icc: false });
    expect(parseConfig('{"cniVersion":"0.4.0","name":"a","network":"b"}').network).toBe('b');
    expect(codeOf(() => parseConfig('{"cniVersion":"0.3.1","name":"a"}'))).toBe(1);
    expect(codeOf(() => parseConfig('['))).toBe(6);
    expect(codeOf(() => parseConfig('[]'))).toBe(6);
    expect(codeOf(() => parseConfig('{"name":"a"}'))).toBe(7);
    expect(codeOf(() => parseConfig('{"cniVersion":"1.0.0","name":"-a"}'))).toBe(7);
    expect(() => parseConfig('{"cniVersion":"1.0.0","name":"a","hairpin":true}')).toThrow(/unknown network configuration key "hairpin"/);
    expect(codeOf(() => parseConfig('{"cniVersion":"1.0.0","name":"a","icc":"no"}'))).toBe(7);
    expect(parseConfig('{"cniVersion":"1.0.0","name":"a","routedCidrs":["10.244.0.0/16"]}').create.routedCidrs).toEqual(['10.244.0.0/16']);
    expect(() => parseConfig('{"cniVersion":"1.0.0","name":"a","routedCidrs":"10.244.0.0/16"}')).toThrow(/"routedCidrs" must be a list of strings/);
    const gc = parseConfig(JSON.stringify({ cniVersion: '1.1.0', name: 'a', 'cni.dev/attachments': [{ containerID: 'x', ifname: 'eth0' }] }));
    expect(gc.validAttachments).toEqual([{ containerId: 'x', ifname: 'eth0' }]);
    expect(callerVersion('{"cniVersion":"0.4.0"}')).toBe('0.4.0');
    expect(callerVersion('garbage')).toBe('1.1.0');
  });

  it('reads CNI_ARGS by the spec: KEY=VALUE pairs, unknown keys only with IgnoreUnknown', () => {
    expect(parseArgs('IgnoreUnknown=1;K8S_POD_NAME=web;K8S_POD_NAMESPACE=prod;FOO=bar;IP=10.0.0.5')).toEqual({ podName: 'web', podNamespace: 'prod', ip: '10.0.0.5' });
    expect(parseArgs('')).toEqual({});
    expect(codeOf(() => parseArgs('FOO=bar'))).toBe(4);
    expect(codeOf(() => parseArgs('novalue'))).toBe(4);
  });

  it('reads port mappings in podman\'s camelCase and the CRI\'s PascalCase, refusing what it cannot publish', () => {
    expect(portMappings({ portMappings: [{ hostPort: 8080, containerPort: 80, protocol: 'tcp', hostIP: '127.0.0.1' }] })).toEqual([
      { hostIp: '127.0.0.1', hostPortStart: 8080, hostPortEnd: 8080, containerPortStart: 80, containerPortEnd: 80, proto: 'tcp' },
    ]);
    expect(portMappings({ PortMappings: [{ HostPort: 53, ContainerPort: 5353, Protocol: 'UDP', HostIP: '' }] })[0]).toMatchObject({ hostIp: undefined, proto: 'udp' });
    expect(portMappings({})).toEqual([]);
    expect(codeOf(() => portMappings({ portMappings: [{ hostPort: 0, containerPort: 80 }] }))).toBe(7);
    expect(codeOf(() => portMappings({ portMappings: [{ hostPort: 1, containerPort: 80, protocol: 'icmp' }] }))).toBe(7);
    expect(() => portMappings({ portMappings: [{ hostPort: 1, containerPort: 80, hostIP: '::1' }] })).toThrow(/IPv6/);
  });

  it('takes one static address from ips or IP=, and a MAC from mac or MAC=', () => {
    expect(staticIp({ ips: ['10.0.0.5/24'] }, {})).toBe('10.0.0.5');
    expect(staticIp({}, { ip: '10.0.0.6' })).toBe('10.0.0.6');
    expect(staticIp({ ips: ['10.0.0.5/24'] }, { ip: '10.0.0.5' })).toBe('10.0.0.5');
    expect(codeOf(() => staticIp({ ips: ['10.0.0.5', '10.0.0.6'] }, {}))).toBe(7);
    expect(codeOf(() => staticIp({ ips: ['fd00::1'] }, {}))).toBe(7);
    expect(staticMac({ mac: '02:00:00:00:00:01' }, { mac: '02:00:00:00:00:02' })).toBe('02:00:00:00:00:01');
    expect(staticMac({}, {})).toBeUndefined();
  });

  it('answers ADD in the caller\'s version, and renders the conflist runtimes read', () => {
    const a = { ifname: 'eth0', mac: '02:42:0a:00:00:02', sandbox: '/run/netns/x', ip: '10.0.0.2', prefix: 24, gateway: '10.0.0.1', defaultRoute: true, mtu: 1500 };
    expect(addResult('0.4.0', a).ips).toEqual([{ version: '4', address: '10.0.0.2/24', gateway: '10.0.0.1', interface: 0 }]);
    expect(addResult('1.0.0', a)).toEqual({
      cniVersion: '1.0.0',
      interfaces: [{ name: 'eth0', mac: '02:42:0a:00:00:02', sandbox: '/run/netns/x' }],
      ips: [{ address: '10.0.0.2/24', gateway: '10.0.0.1', interface: 0 }],
      routes: [{ dst: '0.0.0.0/0', gw: '10.0.0.1' }],
    });
    expect((addResult('1.1.0', a).interfaces as { mtu?: number }[])[0]!.mtu).toBe(1500);
    expect(renderConflist({ name: 'web', network: 'web' })).toEqual({
      cniVersion: '1.0.0',
      cniVersions: ['1.0.0', '1.1.0'],
      name: 'web',
      plugins: [{ type: 'bridgeport', capabilities: { portMappings: true, ips: true, mac: true } }],
    });
  });
});
