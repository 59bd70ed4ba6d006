import type { ContainerRecord, State } from '../model/state.js';

/** A container's /etc/hosts: its own names, then one line per --link alias, as Docker writes it. */
export function renderHostsFile(c: ContainerRecord, state: State): string {
  const lines = [
    '127.0.0.1\tlocalhost',
    '::1\tlocalhost ip6-localhost ip6-loopback',
    'fe00::0\tip6-localnet',
    'ff00::0\tip6-mcastprefix',
    'ff02::1\tip6-allnodes',
    'ff02::2\tip6-allrouters',
  ];
  for (const link of c.links) {
    const child = state.containers.find((x) => x.name === link.name);
    const shared = child?.endpoints.find((e) => c.endpoints.some((own) => own.network === e.network));
    if (!child || !shared) continue;
    const names = link.alias === child.name ? [link.alias] : [link.alias, child.hostname, child.name];
    lines.push(`${shared.ip}\t${[...new Set(names)].join(' ')}`);
  }
  const own = c.endpoints[0];
  if (own) lines.push(`${own.ip}\t${c.hostname}`);
  return `${lines.join('\n')}\n`;
}
