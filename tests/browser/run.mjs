// The driver of the browser test (docs/browser.md): starts Debian's headless Chromium through
// playwright-core, opens the page served by examples/browser_server.rs, runs it, fetches the
// server's observations and checks both sides. Exits 0 only if every check passed.
//
//   node run.mjs --http http://127.0.0.1:H/ --ws ws://127.0.0.1:W/
//
// scripts/browser.sh starts the server and passes its addresses.

import { chromium } from 'playwright-core';

const DEADLINE_MS = 100_000; // below the script's own bound, so this message is the one seen
const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
// Without the background-networking flags Chromium's own connections to the outside hang on
// the closed network; the rest keep the profile quiet. Playwright adds --headless, a fresh
// temporary --user-data-dir of its own (it refuses one in `args`) and --no-sandbox (we run as
// root, where Chromium's sandbox will not start).
const ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

function arg(name) {
  const i = process.argv.indexOf(name);
  if (i < 0 || i + 1 >= process.argv.length) {
    console.error(`run.mjs: missing ${name} URL (see the comment at the top)`);
    process.exit(2);
  }
  return process.argv[i + 1];
}

const httpBase = arg('--http');
const wsBase = arg('--ws');
const failures = [];
let passed = 0;
const check = (ok, what) => {
  if (ok) passed += 1;
  else failures.push(what);
  return ok;
};
const mark = (ok) => (ok ? 'OK' : 'FAIL');

let browser;
const deadline = setTimeout(async () => {
  console.error(`run.mjs: FAILED: the browser test did not finish within ${DEADLINE_MS / 1000} s`);
  try {
    await browser?.close();
  } finally {
    process.exit(1);
  }
}, DEADLINE_MS);

try {
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ARGS });
  const page = await browser.newPage();
  page.on('console', (m) => console.log(`page console: ${m.text()}`));
  page.on('pageerror', (e) => failures.push(`page error: ${e.message}`));
  await page.goto(httpBase);
  const b = await page.evaluate((base) => window.runBrowserTest(base), wsBase);
  const origin = new URL(httpBase).origin;
  // Cross-site WebSocket hijacking: the server allows only the page's origin. The same page
  // from another origin (the same HTTP server as `localhost` instead of 127.0.0.1) must not
  // get a socket open; from the page's own origin, it must.
  const allowedProbe = await page.evaluate((base) => window.probeOrigin(base), wsBase);
  const otherUrl = new URL(httpBase);
  otherUrl.hostname = 'localhost';
  const other = await browser.newPage();
  other.on('console', (m) => console.log(`other-origin page console: ${m.text()}`));
  await other.goto(otherUrl.href);
  const crossProbe = await other.evaluate((base) => window.probeOrigin(base), wsBase);
  const s = await (await fetch(new URL('report', httpBase))).json();
  console.log(`browser: ${b.userAgent}`);

  for (const e of b.errors) check(false, `browser: ${e}`);
  check(s.complete, 'server: not both sockets ended (or the relay still open) within its wait');
  for (const p of s.problems) check(false, `server: ${p}`);

  // Every echo: byte-for-byte in the browser, against the generator on the server.
  console.log('echoes (browser compares the echo with what it sent; server regenerates and compares):');
  check(b.echo.messages.length === s.expectedMessages, `browser: ${b.echo.messages.length} of ${s.expectedMessages} echoes done`);
  check(s.messages.length === s.expectedMessages, `server: ${s.messages.length} of ${s.expectedMessages} messages received`);
  for (const m of b.echo.messages) {
    const sm = s.messages.find((x) => x.k === m.k);
    const serverOk = sm?.ok === true && sm.kind === m.kind && sm.size === m.size;
    check(m.ok, `browser: ${m.kind} ${m.size} B: ${m.error}`);
    check(serverOk, `server: ${m.kind} ${m.size} B: ${sm ? sm.error ?? `saw ${sm.kind} ${sm.size} B` : 'not received'}`);
    console.log(`  ${m.kind.padEnd(10)} ${String(m.size).padStart(8)} B  browser ${mark(m.ok)}  server ${mark(serverOk)}`);
  }

  // permessage-deflate: offered, accepted, and used both ways.
  const offered = s.upgrades.map((u) => `${u.path}: ${u.extensions}`);
  const allOffered = s.upgrades.length === 2 && s.upgrades.every((u) => /permessage-deflate/.test(u.extensions ?? ''));
  const accepted = [b.echo.extensions, b.serverClose.extensions].every((e) => /permessage-deflate/.test(e ?? ''));
  const used = s.frames.toServer.compressed > 0 && s.frames.toBrowser.compressed > 0;
  check(allOffered, `server: the browser's upgrades did not all offer permessage-deflate (${offered.join('; ')})`);
  check(accepted, `browser: ws.extensions lacks permessage-deflate (echo "${b.echo.extensions}", close "${b.serverClose.extensions}")`);
  check(used, `relay: no compressed (RSV1) data frames in both directions (${JSON.stringify(s.frames)})`);
  check(s.upgrades.every((u) => u.origin === origin), `server: upgrade Origin is not the page's ${origin}: ${s.upgrades.map((u) => u.origin)}`);
  console.log(`permessage-deflate: offered ${mark(allOffered)}, accepted (ws.extensions "${b.echo.extensions}") ${mark(accepted)}`);
  console.log(
    `  compressed data frames: browser->server ${s.frames.toServer.compressed}/${s.frames.toServer.messages}, ` +
      `server->browser ${s.frames.toBrowser.compressed}/${s.frames.toBrowser.messages} ${mark(used)}`,
  );

  // (a) The browser closes 1000 "browser done".
  const ea = s.ended.find((e) => e.path === 'echo');
  const ca = s.closing.find((e) => e.path === 'echo');
  const a = b.echo.close;
  const aBrowser = check(a?.wasClean === true && a.code === 1000, `browser: close (a) onclose ${JSON.stringify(a)}, want wasClean, 1000`);
  const aServer = check(
    ea?.closed === true && ea.code === 1000 && ea.reason === 'browser done' && ca?.code === 1000 && ca.reason === 'browser done',
    `server: close (a) on_closing ${JSON.stringify(ca)}, ending ${JSON.stringify(ea)}, want on_closing and on_closed 1000 "browser done"`,
  );
  console.log(
    `close by the browser: browser onclose wasClean=${a?.wasClean} ${a?.code} "${a?.reason}" ${mark(aBrowser)}; ` +
      `server on_closing ${ca?.code} "${ca?.reason}", on_closed ${ea?.code} "${ea?.reason}" ${mark(aServer)}`,
  );

  // (b) The server closes 4000 "server done"; the browser answers (Chromium echoes the code).
  const eb = s.ended.find((e) => e.path === 'close');
  const c = b.serverClose.close;
  const bBrowser = check(
    c?.wasClean === true && c.code === 4000 && c.reason === 'server done',
    `browser: close (b) onclose ${JSON.stringify(c)}, want wasClean, 4000 "server done"`,
  );
  const bServer = check(eb?.closed === true && eb.code === 4000, `server: close (b) ending ${JSON.stringify(eb)}, want on_closed 4000`);
  console.log(
    `close by the server: browser onclose wasClean=${c?.wasClean} ${c?.code} "${c?.reason}" ${mark(bBrowser)}; ` +
      `server on_closed ${eb?.code} "${eb?.reason}" ${mark(bServer)}`,
  );
  // Origins: the allowed page opened a socket, the other origin's page did not (403 before
  // the handler, so the handler saw exactly one probe).
  const allowedOk = check(
    allowedProbe.origin === origin && allowedProbe.opened === true && allowedProbe.code === 1000,
    `browser: the probe from the allowed origin ${origin}: ${JSON.stringify(allowedProbe)}, want opened and closed 1000`,
  );
  const crossOk = check(
    crossProbe.origin === otherUrl.origin && crossProbe.opened === false && crossProbe.code === 1006,
    `browser: the probe from ${otherUrl.origin}: ${JSON.stringify(crossProbe)}, want never opened, 1006`,
  );
  const refusals = s.answers.filter((a) => a.startsWith('HTTP/1.1 403 Forbidden: origin not allowed'));
  const serverOk = check(
    s.probes === 1 && refusals.length === 1,
    `server: ${s.probes} probes reached the handler (want 1), answers ${JSON.stringify(s.answers)} (want one 403 origin not allowed)`,
  );
  console.log(
    `origins: ${origin} ${allowedProbe.opened ? 'opened' : 'refused'} ${mark(allowedOk)}; ` +
      `${otherUrl.origin} ${crossProbe.opened ? 'opened' : 'refused'} (onclose ${crossProbe.code}) ${mark(crossOk)}; ` +
      `server answered "${refusals[0] ?? 'no 403'}", handler saw ${s.probes} probe ${mark(serverOk)}`,
  );
  check(s.ok, 'server: its own checks failed (see its log)');
} catch (e) {
  failures.push(`run.mjs: ${e.stack ?? e}`);
} finally {
  clearTimeout(deadline);
  await browser?.close().catch(() => {});
}

// The plain closing line CI logs are read for.
console.log(`browser: ${passed} passed, ${failures.length} failed`);
if (failures.length > 0) {
  console.error(`browser test FAILED (${failures.length}):`);
  for (const f of failures) console.error(`  - ${f}`);
  process.exit(1);
}
console.log('browser test passed');
