/** Config text shared by the tests and the bench that run two node agents in one process. */

/**
 * cluster.yaml of a two-node cluster `name` (n1 on 198.18.0.1 / 198.19.0.1, n2 on .2) with the
 * heartbeat networks lan and hb2, the key in cluster.key next to it.
 */
export function twoNodeClusterYaml(name: string): string {
  return [
    `cluster: { name: ${name}, key_file: cluster.key }`,
    'networks: [lan, hb2]',
    'nodes:',
    '  - { name: n1, addresses: { lan: 198.18.0.1, hb2: 198.19.0.1 } }',
    '  - { name: n2, addresses: { lan: 198.18.0.2, hb2: 198.19.0.2 } }',
    '',
  ].join('\n');
}
