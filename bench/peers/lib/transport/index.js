'use strict';
// The connection class for a target: every one has the same interface (connect, send,
// sendGroup, ack, createGroup, joinGroup, close and the onDeliver/onDelivered/onProblem hooks).

const { GatewayConnection } = require('./gateway');
const { SocketIoConnection, OfficialSocketIoConnection } = require('./socketio');

function connectionClass(target, socketioClient = 'raw') {
  if (target === 'gateway') return GatewayConnection;
  if (target === 'socketio') return socketioClient === 'official' ? OfficialSocketIoConnection : SocketIoConnection;
  throw new Error(`unknown target ${target}`);
}

module.exports = { connectionClass };
