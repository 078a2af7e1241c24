// A plain TCP echo server for bench:cluster's transport comparison: frames are a u32
// little-endian length and that many bytes, sent back unchanged. Prints its port on stdout.
// It is the floor any transport over a Node socket can reach: no HTTP/2 framing, no gRPC
// message handling, one write per frame.
import net from 'node:net';

const server = net.createServer((socket) => {
  socket.setNoDelay(true);
  let pending = Buffer.alloc(0);
  socket.on('data', (chunk) => {
    pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
    while (pending.length >= 4) {
      const size = 4 + pending.readUInt32LE(0);
      if (pending.length < size) break;
      socket.write(pending.subarray(0, size));
      pending = pending.subarray(size);
    }
  });
  socket.on('error', () => socket.destroy());
});
server.listen(0, '127.0.0.1', () => process.stdout.write(`${server.address().port}\n`));
process.on('SIGTERM', () => process.exit(0));
