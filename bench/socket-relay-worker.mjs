// One process of bench/socket-relay.ts: a source, relay or sink of packet frames on the stage
// node's own transport classes (apps/stage-node/dist), gRPC (Nest's gRPC server with the
// StageGrpcController, GrpcLink) or socket (FrameSocketServer, SocketLink). Argv: role,
// transport, then the next hop's address (relay, source) and the frame count (source).
// Prints one JSON line: {listening: address} when bound; a relay's and sink's
// {cpuUsPerFrame, frames} when the source's last frame has passed.
import { Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { StageGrpcController } from '../apps/stage-node/dist/grpc/stage.grpc-controller.js';
import { stageServerOptions } from '../apps/stage-node/dist/grpc/grpc-options.js';
import { StageInbox } from '../apps/stage-node/dist/wire/stage-inbox.js';
import { Peer } from '../apps/stage-node/dist/registry/peer-directory.js';
import { FrameSocketServer } from '../apps/stage-node/dist/socket/frame-socket-server.js';
import { FrameReceiver } from '../apps/stage-node/dist/wire/frame-receiver.js';
import { encodePackets } from '../apps/stage-node/dist/wire/frame.js';
import net from 'node:net';

const [role, transport, next, countArg] = process.argv.slice(2);
const say = (o) => process.stdout.write(JSON.stringify(o) + '\n');
const events = { refused: (a) => say({ refused: a }), broken: (e) => say({ broken: e.message }) };
const dial = (address) =>
  transport === 'socket'
    ? new Peer('127.0.0.1:1', address).link('Packets', events) // gRPC channel unused
    : new Peer(address).link('Packets', events);

function packet(requestId, rows) {
  return {
    packet: {
      requestId,
      epoch: 1,
      seq: 1,
      nodeIds: Int32Array.from({ length: rows }, (_, i) => i),
      parentIds: Int32Array.from({ length: rows }, (_, i) => i - 1),
      positions: Int32Array.from({ length: rows }, (_, i) => 100 + i),
      hidden: new Float32Array(rows * 192).fill(0.5),
      sampling: { temperature: 0, topP: 1, seed: 0 },
    },
    decisionCount: 0,
    trace: { computeMs: [], rows: [], codecMs: 0 },
  };
}

async function freePort() {
  const s = net.createServer();
  await new Promise((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address();
  await new Promise((r) => s.close(r));
  return port;
}

if (role === 'source') {
  const link = dial(next);
  const rows = Number(process.env.ROWS ?? '1');
  const frame = encodePackets([packet('bench', rows)], 'FP32');
  const count = Number(countArg);
  let sent = 0;
  // One frame at a time, as a pipeline's stage sends one packet per timestep.
  const tick = () => {
    link.write(frame);
    if (++sent < count) return void setTimeout(tick, 0);
    link.write(encodePackets([packet('end', 1)], 'FP32'));
    setTimeout(() => process.exit(0), 300);
  };
  setTimeout(tick, 200);
} else {
  const out = role === 'relay' ? dial(next) : null;
  let frames = 0;
  let cpu0 = null;
  class Inbox extends StageInbox {
    packet(env) {
      if (frames++ === 0) cpu0 = process.cpuUsage();
      if (out) out.write(encodePackets([env], 'FP32'));
      if (env.packet.requestId === 'end') {
        const c = process.cpuUsage(cpu0);
        say({ role, frames, cpuUsPerFrame: (c.user + c.system) / frames });
        frames = 0;
      }
    }
    decision() {}
    verdict() {}
    decisionsClosed() {}
    refused() {}
  }
  const inbox = new Inbox();
  const port = await freePort();
  const address = `127.0.0.1:${port}`;
  if (transport === 'socket') {
    const server = new FrameSocketServer(address, new FrameReceiver(inbox));
    await new Promise((resolve, reject) => server.listen((e) => (e ? reject(e) : resolve())));
  } else {
    class RelayModule {}
    Module({
      controllers: [StageGrpcController],
      providers: [{ provide: StageInbox, useValue: inbox }],
    })(RelayModule);
    const app = await NestFactory.createMicroservice(RelayModule, {
      ...stageServerOptions(address),
      logger: ['error'],
    });
    await app.listen();
  }
  say({ listening: address });
}
