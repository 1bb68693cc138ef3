'use strict';
// Socket.IO client connections to socketio-server.js, in two flavours with one interface (the
// gateway connection's):
//
// - `SocketIoConnection` writes Engine.IO v4 / Socket.IO v5 packets on a plain `ws` socket, the
//   same WebSocket library and JSON work per frame as the gateway client, so at saturation both
//   targets cost the load client alike;
// - `OfficialSocketIoConnection` uses socket.io-client, as an application would
//   (`--socketio-client official`), to check that the hand-written framing changes nothing.

const WebSocket = require('ws');

/** The Engine.IO WebSocket endpoint under an http://, ws:// (or already /socket.io/) URL. */
function engineUrl(url) {
  const base = url.replace(/^http/, 'ws').replace(/\/(socket\.io\/?)?$/, '');
  return `${base}/socket.io/?EIO=4&transport=websocket`;
}

function httpUrl(url) {
  return url.replace(/^ws/, 'http').replace(/\/(socket\.io\/?)?$/, '');
}

class SocketIoConnection {
  /** Engine.IO open (0), then Socket.IO CONNECT (40) with the token as auth; resolves on 40. */
  static connect(url, token, { timeoutMs }) {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(engineUrl(url), { perMessageDeflate: false, handshakeTimeout: timeoutMs });
      const timer = setTimeout(() => {
        ws.terminate();
        reject(new Error('Socket.IO CONNECT timed out'));
      }, timeoutMs);
      const fail = (e) => {
        clearTimeout(timer);
        reject(e);
      };
      ws.once('unexpected-response', (_req, res) => fail(new Error(`upgrade refused: HTTP ${res.statusCode}`)));
      ws.once('error', fail);
      const opening = (data) => {
        const text = data.toString();
        if (text[0] === '0') {
          ws.send(`40${JSON.stringify({ token })}`);
        } else if (text.startsWith('40')) {
          ws.off('message', opening);
          ws.off('error', fail);
          clearTimeout(timer);
          resolve(new SocketIoConnection(ws));
        } else if (text.startsWith('44')) {
          ws.terminate();
          fail(new Error(`Socket.IO CONNECT refused: ${text.slice(2)}`));
        }
      };
      ws.on('message', opening);
    });
  }

  constructor(ws) {
    this.ws = ws;
    this.nextAck = 0;
    this.pending = new Map();
    this.onDeliver = () => {};
    this.onDelivered = () => {};
    this.onProblem = () => {};
    ws.on('message', (data) => this.onFrame(data.toString()));
    ws.on('error', () => {});
    ws.on('close', (code) => this.onProblem(`closed:${code}`));
  }

  onFrame(text) {
    if (text === '2') return this.write('3'); // Engine.IO ping -> pong
    if (text[0] !== '4') return;
    const kind = text[1];
    if (kind === '2') {
      const [name, data] = JSON.parse(text.slice(2));
      if (name === 'msg') this.onDeliver(data.messageId, data.from, data.message, data.groupId);
      else if (name === 'delivered') this.onDelivered(data.messageId);
    } else if (kind === '3') {
      const open = text.indexOf('[');
      const id = Number(text.slice(2, open));
      const callback = this.pending.get(id);
      if (callback === undefined) return;
      this.pending.delete(id);
      const [r] = JSON.parse(text.slice(open));
      if (r?.error) callback(r.error);
      else callback(null, r);
    } else if (kind === '1') {
      this.onProblem('disconnected');
    }
  }

  write(text) {
    if (this.ws.readyState === WebSocket.OPEN) this.ws.send(text);
  }

  emitWithAck(event, data, callback) {
    const id = this.nextAck++;
    this.pending.set(id, callback);
    this.write(`42${id}${JSON.stringify([event, data])}`);
  }

  send(to, message, clientMsgId, callback) {
    this.emitWithAck('send', { to, message, clientMsgId }, callback);
  }

  sendGroup(groupId, message, clientMsgId, callback) {
    this.emitWithAck('sendGroup', { groupId, message, clientMsgId }, callback);
  }

  ack(messageId, from, groupId) {
    this.write(`42${JSON.stringify(['ack', groupId === undefined ? { messageId, from } : { messageId, from, groupId }])}`);
  }

  /** Socket.IO rooms need no creation: the group id is the caller's. */
  async createGroup(name) {
    return name;
  }

  joinGroup(groupId) {
    return new Promise((resolve, reject) => {
      this.emitWithAck('join', { groupId }, (err) => (err ? reject(new Error(`join: ${err}`)) : resolve()));
    });
  }

  close() {
    this.onProblem = () => {};
    this.ws.close(1000);
  }
}

class OfficialSocketIoConnection {
  static connect(url, token, { timeoutMs }) {
    const { io } = require('socket.io-client');
    return new Promise((resolve, reject) => {
      const socket = io(httpUrl(url), {
        transports: ['websocket'], auth: { token }, forceNew: true, reconnection: false, timeout: timeoutMs,
      });
      socket.once('connect', () => resolve(new OfficialSocketIoConnection(socket)));
      socket.once('connect_error', (e) => {
        socket.close();
        reject(new Error(`Socket.IO connect failed: ${e.message}`));
      });
    });
  }

  constructor(socket) {
    this.socket = socket;
    this.onDeliver = () => {};
    this.onDelivered = () => {};
    this.onProblem = () => {};
    socket.on('msg', (d) => this.onDeliver(d.messageId, d.from, d.message, d.groupId));
    socket.on('delivered', (d) => this.onDelivered(d.messageId));
    socket.on('disconnect', (reason) => this.onProblem(`disconnected:${reason}`));
  }

  emitWithAck(event, data, callback) {
    this.socket.emit(event, data, (r) => (r?.error ? callback(r.error) : callback(null, r)));
  }

  send(to, message, clientMsgId, callback) {
    this.emitWithAck('send', { to, message, clientMsgId }, callback);
  }

  sendGroup(groupId, message, clientMsgId, callback) {
    this.emitWithAck('sendGroup', { groupId, message, clientMsgId }, callback);
  }

  ack(messageId, from, groupId) {
    this.socket.emit('ack', groupId === undefined ? { messageId, from } : { messageId, from, groupId });
  }

  async createGroup(name) {
    return name;
  }

  joinGroup(groupId) {
    return new Promise((resolve, reject) => {
      this.emitWithAck('join', { groupId }, (err) => (err ? reject(new Error(`join: ${err}`)) : resolve()));
    });
  }

  close() {
    this.onProblem = () => {};
    this.socket.close();
  }
}

module.exports = { SocketIoConnection, OfficialSocketIoConnection, engineUrl };
