// Network namespaces for the cluster benchmark: one per stage, each with a veth pair into a
// bridge in the root namespace (so every stage has its own network stack and address), a Redis
// of the benchmark's own on the bridge, and a delay proxy per stage for the inter-node latency.
// Everything created here is named pdb-* / 10.77.0.0/24 and removed by cleanup(), which also
// runs for leftovers of an interrupted run.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { freePort } from '@pipedec/testkit/local-cluster';

const BRIDGE = 'pdb-br0';
const SUBNET = '10.77.0';
export const BRIDGE_HOST = `${SUBNET}.254`;
const ns = (i: number) => `pdb-ns${i}`;

function ip(...args: string[]): void {
  execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

export function cleanupNamespaces(): void {
  const list = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' });
  for (const line of list.split('\n')) {
    const name = line.split(' ')[0];
    if (name.startsWith('pdb-ns')) ip('netns', 'del', name);
  }
  try {
    ip('link', 'del', BRIDGE);
  } catch {
    // not there
  }
}

/** Creates n namespaces on a bridge; returns each stage's address. */
export function createNamespaces(n: number): string[] {
  cleanupNamespaces();
  ip('link', 'add', BRIDGE, 'type', 'bridge');
  ip('addr', 'add', `${BRIDGE_HOST}/24`, 'dev', BRIDGE);
  ip('link', 'set', BRIDGE, 'up');
  const hosts: string[] = [];
  for (let i = 0; i < n; i++) {
    const host = `${SUBNET}.${i + 1}`;
    ip('netns', 'add', ns(i));
    ip('link', 'add', `pdb-v${i}`, 'type', 'veth', 'peer', 'name', `pdb-p${i}`);
    ip('link', 'set', `pdb-v${i}`, 'netns', ns(i));
    ip('link', 'set', `pdb-p${i}`, 'master', BRIDGE, 'up');
    ip('-n', ns(i), 'addr', 'add', `${host}/24`, 'dev', `pdb-v${i}`);
    ip('-n', ns(i), 'link', 'set', `pdb-v${i}`, 'up');
    ip('-n', ns(i), 'link', 'set', 'lo', 'up');
    hosts.push(host);
  }
  return hosts;
}

export const netnsWrap = (i: number): string[] => ['ip', 'netns', 'exec', ns(i)];

/** A Redis of the benchmark's own, reachable from every namespace through the bridge. */
export async function startRedis(port: number): Promise<ChildProcess> {
  const child = spawn(
    'redis-server',
    [
      '--bind',
      BRIDGE_HOST,
      '--port',
      String(port),
      '--save',
      '',
      '--appendonly',
      'no',
      // Only the bridge this benchmark made can reach it.
      '--protected-mode',
      'no',
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  for await (const chunk of child.stdout) {
    if (String(chunk).includes('Ready to accept connections')) break;
  }
  child.stdout.resume();
  return child;
}

/** One process proxying each `listen>target` route with `delayMs` per direction. */
export async function startDelayProxy(delayMs: number, routes: string[]): Promise<ChildProcess> {
  const script = fileURLToPath(new URL('./cluster-delay-proxy.mjs', import.meta.url));
  const child = spawn(process.execPath, [script], {
    env: { ...process.env, DELAY_MS: String(delayMs), ROUTES: routes.join(',') },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  await once(child.stdout, 'data');
  child.stdout.resume();
  return child;
}

export async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  await once(child, 'exit');
}

/** What LocalCluster.start needs to place n stages in namespaces behind the delay proxy. */
export interface NetnsCluster {
  redisUrl: string;
  proxy: ChildProcess;
  /** The Redis and the proxy, to stop (stopChild) before cleanupNamespaces. */
  children: ChildProcess[];
  ports: (s: number) => { grpc: number; health: number; frames: number };
  placement: (s: number) => {
    host: string;
    wrap: string[];
    advertise: () => string;
    advertiseFrames: () => string;
  };
}

/**
 * Namespaces for n stages, a Redis on the bridge and one delay proxy (delayMs each way) in
 * front of every stage's gRPC port and frame socket, which the other stages dial.
 */
export async function startNetnsCluster(n: number, delayMs: number): Promise<NetnsCluster> {
  const hosts = createNamespaces(n);
  const redisPort = await freePort();
  const children = [await startRedis(redisPort)];
  const grpcPorts = await Promise.all(hosts.map(() => freePort()));
  const healthPorts = await Promise.all(hosts.map(() => freePort()));
  const framesPorts = await Promise.all(hosts.map(() => freePort()));
  const proxyPorts = await Promise.all(hosts.map(() => freePort()));
  const proxyFramesPorts = await Promise.all(hosts.map(() => freePort()));
  const proxy = await startDelayProxy(delayMs, [
    ...hosts.map((h, s) => `${BRIDGE_HOST}:${proxyPorts[s]}>${h}:${grpcPorts[s]}`),
    ...hosts.map((h, s) => `${BRIDGE_HOST}:${proxyFramesPorts[s]}>${h}:${framesPorts[s]}`),
  ]);
  children.push(proxy);
  return {
    redisUrl: `redis://${BRIDGE_HOST}:${redisPort}`,
    proxy,
    children,
    ports: (s) => ({ grpc: grpcPorts[s], health: healthPorts[s], frames: framesPorts[s] }),
    placement: (s) => ({
      host: hosts[s],
      wrap: netnsWrap(s),
      advertise: () => `${BRIDGE_HOST}:${proxyPorts[s]}`,
      advertiseFrames: () => `${BRIDGE_HOST}:${proxyFramesPorts[s]}`,
    }),
  };
}
