#!/usr/bin/env node
'use strict';
// The peer baseline: a Socket.IO 4.8 server doing the gateway's exchange without storing
// anything. Auth at the handshake with the gateway's HS256 token; each socket joins `user:<id>`.
//
//   send {to, message, clientMsgId} + ack callback -> {messageId, seq}; `msg` to the recipient
//   ack {messageId, from} from the recipient        -> `delivered` to the sender's room
//   join {groupId} + callback; sendGroup {groupId, message, clientMsgId} + callback
//                                                   -> `msg` to room group:<id>, members ack,
//                                                      no delivered notice (as the gateway)
//
//   node socketio-server.js --port 38180 --jwt-secret bench-secret [--redis redis://127.0.0.1:6379]
//
// With --redis, @socket.io/redis-adapter makes several processes on several ports one server.
// `seq` counts per conversation in this process's memory: the sender's process numbers its
// messages, so it is exact while each conversation has one sender process (as in load.js).
// GET /readyz answers 200 once the server (and its Redis adapter) is up. --port 0 takes a free port;
// the line printed once listening names it.

const crypto = require('node:crypto');
const http = require('node:http');
const { parseArgs } = require('node:util');
const { Server } = require('socket.io');
const { verify } = require('./lib/jwt');

const { values: opts } = parseArgs({
  options: {
    port: { type: 'string', default: '38180' },
    host: { type: 'string', default: '127.0.0.1' },
    'jwt-secret': { type: 'string', default: 'bench-secret' },
    redis: { type: 'string' },
  },
});

const MAX_ID_BYTES = 128;
const seqs = new Map();

function nextSeq(conversationId) {
  const seq = (seqs.get(conversationId) ?? 0) + 1;
  seqs.set(conversationId, seq);
  return seq;
}

function validId(id) {
  return typeof id === 'string' && id.length > 0 && Buffer.byteLength(id) <= MAX_ID_BYTES;
}

function messageId() {
  return crypto.randomUUID().replaceAll('-', '');
}

function reply(callback, value) {
  if (typeof callback === 'function') callback(value);
}

function onConnection(io, socket) {
  const me = socket.data.user;
  socket.join(`user:${me}`);

  socket.on('send', (p, callback) => {
    if (!validId(p?.to) || typeof p.message !== 'string') {
      return reply(callback, { error: 'bad_request' });
    }
    const conversationId = me < p.to ? `dm:${me}:${p.to}` : `dm:${p.to}:${me}`;
    const seq = nextSeq(conversationId);
    const id = messageId();
    io.to(`user:${p.to}`).emit('msg', { messageId: id, from: me, seq, message: p.message, conversationId });
    reply(callback, { messageId: id, seq });
  });

  socket.on('ack', (p) => {
    // Group messages get no delivered notice, as in the gateway.
    if (p?.groupId !== undefined || !validId(p?.from) || !validId(p?.messageId)) return;
    io.to(`user:${p.from}`).emit('delivered', { messageId: p.messageId, by: me });
  });

  socket.on('join', (p, callback) => {
    if (!validId(p?.groupId)) return reply(callback, { error: 'bad_request' });
    socket.join(`group:${p.groupId}`);
    reply(callback, { groupId: p.groupId });
  });

  socket.on('sendGroup', (p, callback) => {
    if (!validId(p?.groupId) || typeof p.message !== 'string') {
      return reply(callback, { error: 'bad_request' });
    }
    const room = `group:${p.groupId}`;
    if (!socket.rooms.has(room)) return reply(callback, { error: 'forbidden' });
    const conversationId = `grp:${p.groupId}`;
    const seq = nextSeq(conversationId);
    const id = messageId();
    socket.to(room).emit('msg', {
      messageId: id, from: me, seq, message: p.message, conversationId, groupId: p.groupId,
    });
    reply(callback, { messageId: id, seq });
  });
}

async function main() {
  let ready = false;
  const httpServer = http.createServer((req, res) => {
    if (req.url === '/readyz') {
      res.writeHead(ready ? 200 : 503).end(ready ? 'ready' : 'starting');
    } else {
      res.writeHead(404).end();
    }
  });
  const io = new Server(httpServer, { serveClient: false });
  if (opts.redis) {
    const { createClient } = require('redis');
    const { createAdapter } = require('@socket.io/redis-adapter');
    const pub = createClient({ url: opts.redis });
    const sub = pub.duplicate();
    for (const client of [pub, sub]) client.on('error', (e) => console.error(`redis: ${e.message}`));
    await Promise.all([pub.connect(), sub.connect()]);
    io.adapter(createAdapter(pub, sub));
  }
  const secret = opts['jwt-secret'];
  io.use((socket, next) => {
    const claims = verify(socket.handshake.auth?.token ?? socket.handshake.query.token, secret);
    if (!claims) return next(new Error('unauthorized'));
    socket.data.user = claims.sub;
    next();
  });
  io.on('connection', (socket) => onConnection(io, socket));
  httpServer.listen(Number(opts.port), opts.host, () => {
    ready = true;
    const { address, port } = httpServer.address();
    console.log(`socketio-server pid ${process.pid} listening on ${address}:${port}` +
      (opts.redis ? ` with the Redis adapter on ${opts.redis}` : ''));
  });
  for (const signal of ['SIGTERM', 'SIGINT']) process.on(signal, () => process.exit(0));
}

main().catch((e) => {
  console.error(`socketio-server: ${e.stack ?? e}`);
  process.exit(1);
});
