'use strict';
// A chat-gateway client connection speaking the wire protocol (docs/protocol.md): token in the
// upgrade query, WELCOME (20) first, SEND 1 / SEND GROUP 9 answered by reply 0, DELIVER 2 / 10
// answered with ACK 15, DELIVERED 17, HEARTBEAT 3 and RENEW 21 on WELCOME's schedule.

const WebSocket = require('ws');

const DEVICE = 'load';
/** CREATE GROUP and ADD MEMBERS take at most this many members per frame. */
const MEMBERS_PER_FRAME = 1000;
const HEARTBEAT = '{"type":3}';
const RENEW = '{"type":21}';

class GatewayConnection {
  /** Opens a connection and resolves after WELCOME. */
  static connect(url, token, { timeoutMs }) {
    return new Promise((resolve, reject) => {
      const sep = url.includes('?') ? '&' : '?';
      const ws = new WebSocket(`${url}${sep}token=${encodeURIComponent(token)}&device=${DEVICE}`, {
        perMessageDeflate: false,
        handshakeTimeout: timeoutMs,
      });
      ws.once('unexpected-response', (_req, res) => {
        reject(new Error(`upgrade refused: HTTP ${res.statusCode}`));
        ws.terminate();
      });
      ws.once('error', reject);
      ws.once('message', (data) => {
        ws.off('error', reject);
        const frame = JSON.parse(data.toString());
        if (frame.type !== 20) {
          ws.terminate();
          return reject(new Error(`expected WELCOME, got ${data}`));
        }
        resolve(new GatewayConnection(ws, frame.params));
      });
    });
  }

  constructor(ws, welcome) {
    this.ws = ws;
    this.nextRequest = 1;
    this.pending = new Map();
    this.onDeliver = () => {};
    this.onDelivered = () => {};
    this.onProblem = () => {};
    ws.on('message', (data) => this.onFrame(data.toString()));
    ws.on('error', () => {});
    ws.on('close', (code) => this.onProblem(`closed:${code}`));
    // Heartbeats at a random phase, so thousands of connections do not beat together.
    const beatMs = welcome.heartbeat * 1000;
    this.timers = [setTimeout(() => {
      this.timers.push(setInterval(() => this.write(HEARTBEAT), beatMs).unref());
    }, Math.random() * beatMs).unref()];
    this.scheduleRenew(welcome.expiresAt);
  }

  scheduleRenew(expiresAt) {
    const inMs = Math.max(1000, ((expiresAt - Date.now()) * 2) / 3);
    this.timers.push(setTimeout(() => this.write(RENEW), inMs).unref());
  }

  write(text) {
    if (this.ws.readyState === WebSocket.OPEN) this.ws.send(text);
  }

  onFrame(text) {
    const frame = JSON.parse(text);
    const msg = frame.msg;
    if (msg !== undefined) {
      const p = msg.params;
      if (msg.type === 10 && p.system !== undefined) {
        // A group event (protocol v1.1: created, added, …): acked, not a delivery to count.
        this.ack(frame.messageId);
      } else if (msg.type === 2 || msg.type === 10) {
        this.onDeliver(frame.messageId, p.fromUser.openid, p.message, p.groupId);
      } else if (msg.type === 17) {
        this.onDelivered(p.messageId);
      }
      return;
    }
    if (frame.requestId !== undefined) {
      const callback = this.pending.get(frame.requestId);
      if (callback !== undefined) {
        this.pending.delete(frame.requestId);
        if (frame.type === 500) callback(`${frame.status}:${frame.params?.code}`);
        else callback(null, frame.params);
        return;
      }
    }
    if (frame.type === 500) this.onProblem(`${frame.status}:${frame.params?.code}`);
    else if (frame.type === 21) this.scheduleRenew(frame.params.expiresAt);
    else if (frame.type === 22) this.onProblem('drain');
    else if (frame.type === 23) this.onProblem(`kicked:${frame.params?.reason}`);
  }

  request(type, params, callback) {
    const requestId = this.nextRequest++;
    this.pending.set(requestId, callback);
    this.write(JSON.stringify({ type, params, requestId }));
  }

  /** SEND 1; `callback(err, {messageId, seq})` on reply 0 or ERROR. */
  send(to, message, clientMsgId, callback) {
    this.request(1, { toMessageId: to, message, clientMsgId }, callback);
  }

  /** SEND GROUP 9; answered as `send`. */
  sendGroup(groupId, message, clientMsgId, callback) {
    this.request(9, { toMessageId: groupId, message, clientMsgId }, callback);
  }

  /** ACK 15 of a 2 or 10; its reply 16 carries no requestId and is ignored. */
  ack(messageId) {
    this.write(`{"type":15,"params":{"msgid":${JSON.stringify(messageId)}}}`);
  }

  requestAsync(type, params) {
    return new Promise((resolve, reject) => {
      this.request(type, params, (err, r) => (err ? reject(new Error(`type ${type}: ${err}`)) : resolve(r)));
    });
  }

  /** CREATE GROUP 8 with the first members, ADD MEMBERS 11 with the rest; resolves the group id. */
  async createGroup(name, members) {
    const created = await this.requestAsync(8, { name, members: members.slice(0, MEMBERS_PER_FRAME) });
    for (let i = MEMBERS_PER_FRAME; i < members.length; i += MEMBERS_PER_FRAME) {
      await this.requestAsync(11, { groupId: created.groupId, members: members.slice(i, i + MEMBERS_PER_FRAME) });
    }
    return created.groupId;
  }

  /** Membership is in the store; nothing to do per connection. */
  async joinGroup() {}

  close() {
    for (const timer of this.timers) clearTimeout(timer);
    this.onProblem = () => {};
    this.ws.close(1000);
  }
}

module.exports = { GatewayConnection };
