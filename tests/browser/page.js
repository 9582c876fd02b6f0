// The browser half of the browser test (docs/browser.md), served by examples/browser_server.rs
// and run by run.mjs through `runBrowserTest(wsBase)` and `probeOrigin(wsBase)`.
//
// The payloads are generated, not stored: SIZES, the PRNG and the two generators must match
// `SIZES`, `Xorshift` and `payload()` in examples/browser_server.rs, which regenerates every
// message to check what it received before echoing it.

'use strict';

// 7-bit, 16-bit and 64-bit frame lengths at their edges, the server's 1 KiB compression
// threshold, and large messages that span many 64 KiB fragments.
const SIZES = [0, 1, 125, 126, 1023, 1024, 65535, 65536, 1 << 20, 4 << 20];
// How long one step (an open, an echo, a close) may take before the run gives up.
const STEP_TIMEOUT_MS = 30000;

function xorshift(seed) {
  let x = seed >>> 0;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x;
  };
}

// Message k's seed; odd multiplier, so never zero for k < 2^32 - 1.
function seedFor(k) {
  return Math.imul(k + 1, 0x9e3779b1) >>> 0;
}

const LETTERS = 'etaoinshrdlu';

// `size` UTF-8 bytes of text. Plain: letters and spaces (compresses well). Mixed: characters
// of 1 to 4 UTF-8 bytes (no surrogates), ASCII where a longer one would overrun the size.
function textPayload(k, size, mixed) {
  const next = xorshift(seedFor(k));
  const parts = [];
  let chunk = [];
  let len = 0;
  while (len < size) {
    const r = next();
    let cp;
    if (!mixed) {
      cp = (r & 7) === 0 ? 0x20 : LETTERS.charCodeAt((r >>> 3) % LETTERS.length);
      len += 1;
    } else {
      let n = (r & 3) + 1;
      if (n > size - len) n = 1;
      const v = r >>> 8;
      if (n === 1) cp = 0x20 + (v % 95);
      else if (n === 2) cp = 0x80 + (v % (0x800 - 0x80));
      else if (n === 3) cp = 0x800 + (v % (0xd800 - 0x800));
      else cp = 0x10000 + (v % 0x100000);
      len += n;
    }
    chunk.push(cp);
    if (chunk.length === 8192) {
      parts.push(String.fromCodePoint(...chunk));
      chunk = [];
    }
  }
  parts.push(String.fromCodePoint(...chunk));
  return parts.join('');
}

function binaryPayload(k, size) {
  const next = xorshift(seedFor(k));
  const bytes = new Uint8Array(size);
  for (let i = 0; i < size; i++) bytes[i] = next() & 0xff;
  return bytes;
}

// The messages in the order they are sent: for each size a text message (mixed UTF-8 at odd
// positions in SIZES) and a binary one.
function plan() {
  const out = [];
  SIZES.forEach((size, i) => {
    out.push({ k: 2 * i, kind: i % 2 === 1 ? 'text-utf8' : 'text-ascii', size });
    out.push({ k: 2 * i + 1, kind: 'binary', size });
  });
  return out;
}

function withTimeout(promise, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: nothing within ${STEP_TIMEOUT_MS} ms`)), STEP_TIMEOUT_MS);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

// A socket whose messages and close are awaited in order.
function openSocket(url) {
  return withTimeout(
    new Promise((resolve, reject) => {
      const ws = new WebSocket(url);
      ws.binaryType = 'arraybuffer';
      const inbox = [];
      const waiting = [];
      let closeEvent = null;
      const closeWaiters = [];
      ws.onmessage = (ev) => {
        const w = waiting.shift();
        if (w) w.resolve(ev.data);
        else inbox.push(ev.data);
      };
      ws.onclose = (ev) => {
        closeEvent = { wasClean: ev.wasClean, code: ev.code, reason: ev.reason };
        for (const w of waiting.splice(0)) w.reject(new Error(`socket closed (${ev.code}) while a message was awaited`));
        for (const w of closeWaiters.splice(0)) w(closeEvent);
        reject(new Error(`${url}: closed before it opened (code ${ev.code})`));
      };
      ws.onopen = () =>
        resolve({
          ws,
          next: () =>
            inbox.length > 0
              ? Promise.resolve(inbox.shift())
              : closeEvent
                ? Promise.reject(new Error('socket already closed'))
                : new Promise((res, rej) => waiting.push({ resolve: res, reject: rej })),
          closed: () => (closeEvent ? Promise.resolve(closeEvent) : new Promise((res) => closeWaiters.push(res))),
        });
    }),
    `opening ${url}`,
  );
}

// Where two payloads first differ, or -1.
function firstDifference(a, b) {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i;
  return a.length === b.length ? -1 : n;
}

async function echoOne(sock, m) {
  const isText = m.kind !== 'binary';
  const sent = isText ? textPayload(m.k, m.size, m.kind === 'text-utf8') : binaryPayload(m.k, m.size);
  const sentBytes = isText ? new TextEncoder().encode(sent) : sent;
  const r = { k: m.k, kind: m.kind, size: m.size, sentBytes: sentBytes.length, ok: false };
  sock.ws.send(sent);
  const reply = await withTimeout(sock.next(), `echo of message ${m.k} (${m.kind}, ${m.size} B)`);
  if (isText !== (typeof reply === 'string')) {
    r.error = `echo came back as ${typeof reply === 'string' ? 'text' : 'binary'}`;
    return r;
  }
  const got = isText ? new TextEncoder().encode(reply) : new Uint8Array(reply);
  r.gotBytes = got.length;
  const diff = firstDifference(sentBytes, got);
  if (diff >= 0) r.error = `echo differs from what was sent at byte ${diff} (sent ${sentBytes.length} B, got ${got.length} B)`;
  else if (sentBytes.length !== m.size) r.error = `generator made ${sentBytes.length} B, not ${m.size}`;
  else r.ok = true;
  return r;
}

// Everything the page checks, as one JSON-able object; errors are reported, not thrown, so the
// driver always gets what was seen up to the failure.
async function runBrowserTest(wsBase) {
  const result = { userAgent: navigator.userAgent, echo: { messages: [] }, serverClose: {}, errors: [] };
  try {
    const sock = await openSocket(wsBase + 'echo');
    result.echo.extensions = sock.ws.extensions;
    for (const m of plan()) {
      result.echo.messages.push(await echoOne(sock, m));
    }
    // (a) The browser closes.
    sock.ws.close(1000, 'browser done');
    result.echo.close = await withTimeout(sock.closed(), 'the close of the echo socket');
  } catch (e) {
    result.errors.push(`echo socket: ${e.message}`);
  }
  try {
    // (b) The server closes, when asked to.
    const sock = await openSocket(wsBase + 'close');
    result.serverClose.extensions = sock.ws.extensions;
    sock.ws.send('please close');
    result.serverClose.close = await withTimeout(sock.closed(), 'the server-initiated close');
  } catch (e) {
    result.errors.push(`server-close socket: ${e.message}`);
  }
  return result;
}

// Opens `wsBase + 'probe'` and closes it at once: whether this page's origin may open a socket
// at all (the server allows only the origin the test page is first served from). Resolves to
// { opened, code, wasClean }; a refused upgrade never opens and closes with 1006.
function probeOrigin(wsBase) {
  return withTimeout(
    new Promise((resolve) => {
      const ws = new WebSocket(wsBase + 'probe');
      let opened = false;
      ws.onopen = () => {
        opened = true;
        ws.close(1000, 'probe done');
      };
      ws.onclose = (ev) => resolve({ origin: location.origin, opened, code: ev.code, wasClean: ev.wasClean });
    }),
    `the origin probe from ${location.origin}`,
  ).catch((e) => ({ origin: location.origin, opened: false, error: e.message }));
}

window.runBrowserTest = runBrowserTest;
window.probeOrigin = probeOrigin;
