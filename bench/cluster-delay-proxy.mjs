// A userspace stand-in for `tc netem delay` (this kernel has no netem qdisc): a TCP proxy that
// holds every chunk for DELAY_MS before passing it on, in both directions, keeping order. One
// process serves several routes: ROUTES="listenHost:listenPort>targetHost:targetPort,...".
// Each stage advertises its proxy's address, so every hop into a stage (packets, decisions,
// verdicts) is delayed once, like a link with that one-way latency.
import net from 'node:net';

const delayMs = Number(process.env.DELAY_MS ?? '0');
const routes = (process.env.ROUTES ?? '').split(',').filter(Boolean);

/** Writes chunks to `to` delayMs after they arrived, in arrival order. */
function delayedPipe(from, to) {
  const queue = []; // [dueTime, chunk]
  let timer = null;
  const flush = () => {
    timer = null;
    const now = performance.now();
    while (queue.length > 0 && queue[0][0] <= now + 0.05) to.write(queue.shift()[1]);
    if (queue.length > 0) timer = setTimeout(flush, Math.max(0, queue[0][0] - performance.now()));
  };
  from.on('data', (chunk) => {
    if (delayMs <= 0) return void to.write(chunk);
    queue.push([performance.now() + delayMs, chunk]);
    if (!timer) timer = setTimeout(flush, delayMs);
  });
  from.on('end', () => {
    const finish = () => (queue.length > 0 || timer ? setTimeout(finish, 1) : to.end());
    finish();
  });
}

for (const route of routes) {
  const [listen, target] = route.split('>');
  const [lh, lp] = listen.split(':');
  const [th, tp] = target.split(':');
  net
    .createServer((client) => {
      client.setNoDelay(true);
      const upstream = net.connect(Number(tp), th);
      upstream.setNoDelay(true);
      delayedPipe(client, upstream);
      delayedPipe(upstream, client);
      const close = () => {
        client.destroy();
        upstream.destroy();
      };
      client.on('error', close);
      upstream.on('error', close);
      client.on('close', close);
      upstream.on('close', close);
    })
    .listen(Number(lp), lh);
}
process.stdout.write(`delay proxy ${delayMs} ms: ${routes.join(' ')}\n`);
process.on('SIGTERM', () => process.exit(0));
