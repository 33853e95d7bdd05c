// Test support: real redis-server and cometbox node processes on free
// loopback ports, a tiny static HTTP server for test pages on other
// origins, browsers (Debian's Chromium via playwright-core, Firefox ESR via
// puppeteer-core over WebDriver BiDi), and small helpers. Everything started
// here is stopped by stopAll() (call it from after()) and, as a last
// resort, when the test process exits.
"use strict";

const { spawn, spawnSync } = require("node:child_process");
const crypto = require("node:crypto");
const fs = require("node:fs");
const http = require("node:http");
const net = require("node:net");
const os = require("node:os");
const path = require("node:path");

const STRICT = process.env.COMETBOX_TEST_STRICT === "1";
const WEB = path.resolve(__dirname, "..", "..");
const ROOT = path.resolve(WEB, "..");
const CHROMIUM = process.env.COMETBOX_CHROMIUM || "/usr/bin/chromium";
const FIREFOX = process.env.COMETBOX_FIREFOX || "/usr/bin/firefox-esr";
const CHROMIUM_FLAGS = [
  "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
  "--disable-component-update", "--disable-sync", "--no-first-run",
];

const children = new Set();
const cleanups = [];
let closing = false;

// onCleanup registers what stopAll() undoes; once stopAll() has begun (a
// before() hook failed while a browser was still launching), at once.
function onCleanup(fn) {
  if (closing) {
    Promise.resolve().then(fn).catch(() => {});
  } else {
    cleanups.push(fn);
  }
}

// settle waits for every start to finish (so that each registered its
// cleanup) and then throws the first failure, if any.
async function settle(promises) {
  const results = await Promise.allSettled(promises);
  const failed = results.find((r) => r.status === "rejected");
  if (failed) throw failed.reason;
  return results.map((r) => r.value);
}

process.on("exit", () => {
  for (const c of children) {
    try { c.kill("SIGKILL"); } catch (_) { /* gone */ }
  }
});

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function until(cond, ms = 10000, what = "condition", every = 25) {
  const end = Date.now() + ms;
  let last;
  while (Date.now() < end) {
    last = await cond();
    if (last) return last;
    await sleep(every);
  }
  throw new Error(`timed out after ${ms} ms waiting for ${what}`);
}

function which(cmd) {
  if (cmd.includes("/")) return fs.existsSync(cmd) ? cmd : null;
  const r = spawnSync("sh", ["-c", `command -v ${cmd}`], { encoding: "utf8" });
  return r.status === 0 ? r.stdout.trim() : null;
}

// missing returns why a suite cannot run here ("" when it can): the tools it
// needs are absent. In strict mode the caller fails instead of skipping.
function missing(tools) {
  const why = [];
  for (const t of tools) {
    if (t === "redis-server" && !which("redis-server")) why.push("redis-server not installed");
    if (t === "chromium" && !which(CHROMIUM)) why.push(`chromium not found at ${CHROMIUM}`);
    if (t === "firefox" && !which(FIREFOX)) why.push(`firefox-esr not found at ${FIREFOX}`);
    if (t === "node-binary" && !process.env.COMETBOX_BIN && !which("go")) why.push("neither COMETBOX_BIN nor go to build the node");
  }
  return why.join("; ");
}

// skipOrFail gives the `skip` option for a suite's tests: false when the
// tools are there; a message when not; and in strict mode (which must not
// skip) it throws so that the run fails.
function skipOrFail(tools) {
  const why = missing(tools);
  if (!why) return false;
  if (STRICT) throw new Error(`COMETBOX_TEST_STRICT=1 and ${why}`);
  const msg = `${why} (set COMETBOX_TEST_STRICT=1 to fail instead)`;
  console.log(`SKIP: ${msg}`);
  return msg;
}

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.unref();
    s.on("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

function ping(port) {
  return new Promise((resolve) => {
    const sock = net.connect(port, "127.0.0.1");
    let buf = "";
    sock.setTimeout(500, () => { sock.destroy(); resolve(false); });
    sock.on("error", () => resolve(false));
    sock.on("connect", () => sock.write("PING\r\n"));
    sock.on("data", (d) => {
      buf += d;
      if (buf.includes("\r\n")) {
        sock.destroy();
        resolve(buf.startsWith("+PONG"));
      }
    });
  });
}

function track(child) {
  children.add(child);
  child.on("exit", () => children.delete(child));
  return child;
}

// startRedis runs a redis-server without persistence on a free port (or
// the one given, to restart it in place).
async function startRedis(port) {
  port = port || (await freePort());
  const proc = track(spawn("redis-server", ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"], {
    stdio: ["ignore", "ignore", "pipe"],
  }));
  let spawnError = null;
  proc.once("error", (e) => { spawnError = e; });
  await until(() => {
    if (spawnError) throw spawnError;
    return ping(port);
  }, 10000, `redis-server on ${port}`, 20);
  const r = {
    port,
    url: `redis://127.0.0.1:${port}`,
    proc,
    async stop() {
      if (proc.exitCode !== null || proc.signalCode) return;
      const done = new Promise((res) => proc.once("exit", res));
      proc.kill("SIGTERM");
      await done;
    },
  };
  onCleanup(() => r.stop());
  return r;
}

let binary;
// nodeBinary returns $COMETBOX_BIN, or a node built once per test file from
// this tree (so it embeds this web/ directory's files).
function nodeBinary() {
  if (process.env.COMETBOX_BIN) return process.env.COMETBOX_BIN;
  if (binary) return binary;
  const dir = path.join(os.tmpdir(), "cb-web");
  fs.mkdirSync(dir, { recursive: true });
  const tmp = path.join(dir, `cometbox.${process.pid}`);
  const r = spawnSync("go", ["build", "-o", tmp, "./cmd/cometbox"], { cwd: ROOT, encoding: "utf8" });
  if (r.status !== 0) throw new Error("go build ./cmd/cometbox failed:\n" + r.stderr);
  binary = path.join(dir, "cometbox");
  fs.renameSync(tmp, binary); // atomic: concurrent test files each get a whole binary
  return binary;
}

// startNode runs a cometbox node on a free loopback port and waits for its
// "listening" line and /readyz.
async function startNode({ redis, name = "n", args = [] } = {}) {
  const argv = ["-listen", "127.0.0.1:0", "-log-format", "json", "-node-name", name];
  if (redis) argv.push("-redis-url", redis.url);
  argv.push(...args);
  const proc = track(spawn(nodeBinary(), argv, { stdio: ["ignore", "ignore", "pipe"] }));
  const logs = [];
  let addr = null;
  let lineBuf = "";
  proc.stderr.setEncoding("utf8");
  proc.stderr.on("data", (d) => {
    lineBuf += d;
    let i;
    while ((i = lineBuf.indexOf("\n")) >= 0) {
      const line = lineBuf.slice(0, i);
      lineBuf = lineBuf.slice(i + 1);
      logs.push(line);
      if (logs.length > 2000) logs.shift();
      try {
        const j = JSON.parse(line);
        if (j.msg === "listening" && j.addr) addr = j.addr;
      } catch (_) { /* not JSON */ }
    }
  });
  const exited = new Promise((res) => proc.once("exit", res));
  const failed = new Promise((_, rej) => proc.once("error", (e) => rej(new Error(`node ${name}: ${e.message}`))));
  await Promise.race([
    failed,
    until(() => addr, 15000, `node ${name} listening`, 10),
    exited.then(() => { throw new Error(`node ${name} exited:\n${logs.join("\n")}`); }),
  ]);
  const url = `http://${addr}`;
  await until(async () => {
    try {
      return (await fetch(url + "/readyz")).status === 200;
    } catch (_) {
      return false;
    }
  }, 15000, `node ${name} ready`, 20);
  const node = {
    url,
    name,
    proc,
    logs,
    async stop(signal = "SIGTERM") {
      if (proc.exitCode !== null || proc.signalCode) return;
      proc.kill(signal);
      await exited;
    },
    kill() {
      return node.stop("SIGKILL");
    },
  };
  onCleanup(() => node.kill());
  return node;
}

async function publish(nodeURL, to, data, { secret } = {}) {
  const headers = { "Content-Type": "application/json" };
  if (secret) headers.Authorization = "Bearer " + secret;
  const r = await fetch(nodeURL + "/publish", {
    method: "POST",
    headers,
    body: JSON.stringify({ messages: [{ to, data }] }),
  });
  const body = await r.json();
  if (r.status !== 200) throw Object.assign(new Error(`publish: ${r.status} ${JSON.stringify(body)}`), { status: r.status });
  return body.queued[0].id;
}

function mintToken(secret, client, exp) {
  const sig = crypto.createHmac("sha256", secret).update(`cometbox:v1:${client}:${exp}`).digest("base64url");
  return `${exp}.${sig}`;
}

// connections reads how many polls and streams a node holds now.
async function connections(nodeURL) {
  const text = await (await fetch(nodeURL + "/metrics")).text();
  const gauge = (name) => {
    const m = new RegExp("^" + name + " ([0-9.e+]+)$", "m").exec(text);
    return m ? Number(m[1]) : 0;
  };
  const polls = gauge("cometbox_polls_waiting");
  const streams = gauge("cometbox_streams_open");
  return { polls, streams, total: polls + streams };
}

// The test page: loads cometbox.js from ?src=, and starts a client with
// the options in ?opts= (JSON), recording everything in window.H.
const HARNESS = `<!doctype html>
<html><head><meta charset="utf-8"><title>cometbox test page</title></head>
<body><p id="status">loading</p>
<script>
(function () {
  var q = new URLSearchParams(location.search);
  var H = window.H = { msgs: [], errors: [], states: [], gaps: [], resets: 0, roles: [], tokenCalls: 0, loaded: false };
  H.start = function (opts) {
    opts = Object.assign({}, opts);
    if (opts.tokenFromTest) {
      delete opts.tokenFromTest;
      opts.token = function () { H.tokenCalls++; return window.mintToken(opts.client); };
    }
    opts.onMessage = function (m) { H.msgs.push(m); document.getElementById("status").textContent = H.msgs.length + " messages"; };
    opts.onError = function (e) { H.errors.push({ code: e.code, status: e.status, fatal: e.fatal, url: e.url, message: e.message, retryIn: e.retryIn }); };
    opts.onStateChange = function (s) { H.states.push(s); };
    opts.onGap = function (g) { H.gaps.push(g); };
    opts.onReset = function () { H.resets++; };
    var Ctor = H.Cometbox || window.Cometbox;
    H.cb = new Ctor(opts);
    H.cb.on("role", function (r) { H.roles.push(r); });
    H.cb.start();
    return true;
  };
  function loaded() {
    H.loaded = true;
    if (q.get("opts")) H.start(JSON.parse(q.get("opts")));
  }
  if (q.get("module")) {
    var m = document.createElement("script");
    m.type = "module";
    m.textContent = "import { Cometbox } from " + JSON.stringify(q.get("src")) + "; window.H.Cometbox = Cometbox; window.H.moduleLoaded();";
    H.moduleLoaded = loaded;
    document.head.appendChild(m);
  } else {
    var s = document.createElement("script");
    s.src = q.get("src");
    s.onload = loaded;
    s.onerror = function () { H.loadError = true; };
    document.head.appendChild(s);
  }
})();
</script></body></html>`;

// startPageServer serves the test page on a free port: a separate origin.
async function startPageServer() {
  const server = http.createServer((req, res) => {
    const u = new URL(req.url, "http://x");
    if (u.pathname === "/harness.html") {
      res.writeHead(200, { "Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-store" });
      res.end(HARNESS);
      return;
    }
    res.writeHead(404, { "Content-Type": "text/plain" });
    res.end("not found");
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  const origin = `http://127.0.0.1:${server.address().port}`;
  const s = {
    origin,
    // page builds the URL of a test page: the client from src, started
    // with opts.
    page(src, opts, extra = {}) {
      const q = new URLSearchParams({ src });
      if (opts) q.set("opts", JSON.stringify(opts));
      for (const [k, v] of Object.entries(extra)) q.set(k, v);
      return `${origin}/harness.html?${q}`;
    },
    close() {
      server.closeAllConnections();
      return new Promise((r) => server.close(r));
    },
  };
  onCleanup(() => s.close());
  return s;
}

// startBufferingProxy forwards everything to a node, except that it holds
// back the whole of an event stream (as a buffering proxy does): the page
// sees the stream open and then nothing.
async function startBufferingProxy(nodeURL) {
  const target = new URL(nodeURL);
  const server = http.createServer((req, res) => {
    const up = http.request({ host: target.hostname, port: target.port, path: req.url, method: req.method, headers: req.headers }, (ur) => {
      if (req.url.startsWith("/stream")) {
        ur.resume(); // swallowed: nothing reaches the browser
        return;
      }
      res.writeHead(ur.statusCode, ur.headers);
      ur.pipe(res);
    });
    up.on("error", () => res.destroy());
    res.on("close", () => up.destroy()); // the browser went away (or the answer is done)
    req.pipe(up);
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  const p = {
    url: `http://127.0.0.1:${server.address().port}`,
    close() {
      server.closeAllConnections();
      return new Promise((r) => server.close(r));
    },
  };
  onCleanup(() => p.close());
  return p;
}

async function launchChromium() {
  const { chromium } = require("playwright-core");
  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_FLAGS });
  onCleanup(() => browser.close().catch(() => {}));
  return browser;
}

async function launchFirefox() {
  const puppeteer = require("puppeteer-core");
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "cb-firefox-"));
  const browser = await puppeteer.launch({
    browser: "firefox",
    protocol: "webDriverBiDi",
    executablePath: FIREFOX,
    headless: true,
    userDataDir: dir,
    extraPrefsFirefox: {
      "app.update.enabled": false,
      "browser.shell.checkDefaultBrowser": false,
      "datareporting.policy.dataSubmissionEnabled": false,
      "toolkit.telemetry.enabled": false,
      "network.captive-portal-service.enabled": false,
    },
  });
  onCleanup(async () => {
    await browser.close().catch(() => {});
    fs.rmSync(dir, { recursive: true, force: true });
  });
  return browser;
}

async function stopAll() {
  closing = true;
  while (cleanups.length) {
    const c = cleanups.pop();
    try {
      await c();
    } catch (_) { /* best effort */ }
  }
}

// The browser suites' common ground. Both drivers' pages (playwright-core
// for Chromium, puppeteer-core for Firefox) have evaluate, goto and
// waitForFunction.

// startRig starts a redis-server, the page server (another origin) and
// two nodes a and b that allow it, and launches a browser with launch.
async function startRig(launch) {
  nodeBinary(); // a build failure stops here, before anything starts
  const [redis, pages] = await settle([startRedis(), startPageServer()]);
  const args = ["-cors-origins", pages.origin, "-poll-timeout", "5s"];
  const [A, B, browser] = await settle([
    startNode({ redis, name: "a", args }),
    startNode({ redis, name: "b", args }),
    launch(),
  ]);
  return { redis, pages, A, B, browser };
}

// openPage opens url in a new page of target (a browser or a context)
// and waits until the test page has loaded the client, or failed to.
async function openPage(target, url) {
  const page = await target.newPage();
  await page.goto(url);
  await page.waitForFunction(() => window.H && (window.H.loaded || window.H.loadError));
  return page;
}

// pageState reads what the page's client recorded.
function pageState(page) {
  return page.evaluate(() => {
    const H = window.H;
    const cb = H.cb;
    return {
      msgs: H.msgs, errors: H.errors, states: H.states, gaps: H.gaps, resets: H.resets, roles: H.roles,
      tokenCalls: H.tokenCalls,
      state: cb && cb.state, transport: cb && cb.transport, role: cb && cb.role, cursor: cb && cb.cursor, url: cb && cb.url,
    };
  });
}

// waitForPage waits until pred holds of the page's state; on a timeout
// the error tells the last state seen.
async function waitForPage(page, pred, what, ms = 10000, every = 25) {
  let last;
  try {
    return await until(async () => {
      last = await pageState(page);
      return pred(last) ? last : null;
    }, ms, what, every);
  } catch (e) {
    e.message += "\npage state: " + JSON.stringify(last);
    throw e;
  }
}

let clientSeq = 0;
// uniqueClient names a client no other test uses.
function uniqueClient(prefix = "c") {
  return `${prefix}-${process.pid}-${Date.now().toString(36)}-${++clientSeq}`;
}

module.exports = {
  STRICT, WEB, ROOT, CHROMIUM, FIREFOX, CHROMIUM_FLAGS,
  sleep, until, which, missing, skipOrFail, freePort, settle,
  startRedis, startNode, nodeBinary, publish, mintToken, connections,
  startPageServer, startBufferingProxy, launchChromium, launchFirefox, stopAll, uniqueClient,
  startRig, openPage, pageState, waitForPage,
};
