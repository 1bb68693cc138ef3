'use strict';
// HS256 JSON Web Tokens with node's crypto: what `chat-gateway token` issues (claims `sub`,
// `name`, `exp`; DESIGN.md §3) and what both servers verify at the handshake.

const crypto = require('node:crypto');

const HEADER = b64url(JSON.stringify({ typ: 'JWT', alg: 'HS256' }));

function b64url(text) {
  return Buffer.from(text).toString('base64url');
}

function signature(input, secret) {
  return crypto.createHmac('sha256', secret).update(input).digest('base64url');
}

/** A token for user `sub` (display name `name`) valid for `ttlSeconds`. */
function sign(sub, secret, { name = sub, ttlSeconds = 86400 } = {}) {
  const exp = Math.floor(Date.now() / 1000) + ttlSeconds;
  const body = `${HEADER}.${b64url(JSON.stringify({ sub, name, exp }))}`;
  return `${body}.${signature(body, secret)}`;
}

/**
 * The claims of a valid token, or null when it is malformed, not HS256, badly signed, expired
 * (no leeway, as the gateway) or its `sub` is empty or longer than 128 bytes.
 */
function verify(token, secret) {
  if (typeof token !== 'string') return null;
  const parts = token.split('.');
  if (parts.length !== 3) return null;
  const expected = Buffer.from(signature(`${parts[0]}.${parts[1]}`, secret));
  const given = Buffer.from(parts[2]);
  if (given.length !== expected.length || !crypto.timingSafeEqual(given, expected)) return null;
  let header;
  let claims;
  try {
    header = JSON.parse(Buffer.from(parts[0], 'base64url'));
    claims = JSON.parse(Buffer.from(parts[1], 'base64url'));
  } catch {
    return null;
  }
  if (header?.alg !== 'HS256' || claims === null || typeof claims !== 'object') return null;
  const { sub, exp } = claims;
  if (typeof sub !== 'string' || sub.length === 0 || Buffer.byteLength(sub) > 128) return null;
  if (typeof exp !== 'number' || exp <= Date.now() / 1000) return null;
  return claims;
}

module.exports = { sign, verify };
