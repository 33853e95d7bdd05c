// Test support: real redis-server and cometbox node processes on free
// loopback ports, a tiny static HTTP server for test pages on other
// origins, browsers (Debian's Chromium via playwright-core, Firefox ESR via
// puppeteer-core over WebDriver BiDi, WebKitGTK's MiniBrowser via its
// WebKitWebDriver and selenium-webdriver), and small helpers. Everything started
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
const WEBKIT_DRIVER = process.env.COMETBOX_WEBKIT_DRIVER || "/usr/bin/WebKitWebDriver";
const MINIBROWSER = process.env.COMETBOX_MINIBROWSER || findMiniBrowser();
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

// findMiniBrowser finds the browser that WebKitGTK ships for WebDriver:
// Debian puts it in /usr/lib/<multiarch>/webkit2gtk-4.1/ (4.0 for the
// libsoup2 build), Fedora in /usr/libexec/webkit2gtk-4.1/.
function findMiniBrowser() {
  const dirs = [];
  try {
    for (const d of fs.readdirSync("/usr/lib")) dirs.push(path.join("/usr/lib", d));
  } catch (_) { /* no /usr/lib */ }
  dirs.push("/usr/lib", "/usr/libexec");
  for (const api of ["webkit2gtk-4.1", "webkit2gtk-4.0", "webkitgtk-6.0"]) {
    for (const d of dirs) {
      const f = path.join(d, api, "MiniBrowser");
      if (fs.existsSync(f)) return f;
    }
  }
  return "";
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
    if (t === "webkit") {
      if (!which(WEBKIT_DRIVER)) why.push(`WebKitWebDriver not found at ${WEBKIT_DRIVER} (Debian: webkit2gtk-driver)`);
      if (!MINIBROWSER) why.push("WebKitGTK's MiniBrowser not found (Debian: libwebkit2gtk-4.1-0)");
      if (!which("Xvfb") && !process.env.DISPLAY) why.push("neither Xvfb (Debian: xvfb) nor a DISPLAY for MiniBrowser");
    }
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
  var H = window.H = { msgs: [], errors: [], states: [], gaps: [], resets: 0, roles: [], tokenCalls: 0, pageshows: [], loaded: false };
  // Whether each pageshow came from the back/forward cache.
  window.addEventListener("pageshow", function (e) { H.pageshows.push(!!e.persisted); });
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
    if (u.pathname === "/frame.html") {
      // A page that embeds ?src= in an iframe: the test page on another site.
      res.writeHead(200, { "Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-store" });
      res.end(`<!doctype html><title>embedding page</title><iframe src="${u.searchParams.get("src").replace(/[&"<>]/g, (c) => `&#${c.charCodeAt(0)};`)}"></iframe>`);
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

// startXvfb runs a virtual X server for MiniBrowser, which has no headless
// mode in Debian 12's WebKitGTK; the server picks a free display number
// and writes it to fd 3. No xauth: it listens on a local socket only.
async function startXvfb() {
  const proc = track(spawn("Xvfb", ["-displayfd", "3", "-nolisten", "tcp", "-screen", "0", "1280x1024x24"], {
    stdio: ["ignore", "ignore", "pipe", "pipe"],
  }));
  let out = "";
  let err = "";
  proc.stdio[3].setEncoding("utf8");
  proc.stdio[3].on("data", (d) => { out += d; });
  proc.stderr.setEncoding("utf8");
  proc.stderr.on("data", (d) => { err += d; });
  let spawnError = null;
  proc.once("error", (e) => { spawnError = e; });
  onCleanup(() => { proc.kill("SIGTERM"); });
  await until(() => {
    if (spawnError) throw spawnError;
    if (proc.exitCode !== null) throw new Error("Xvfb exited:\n" + err);
    return /^\d+\n/.test(out);
  }, 10000, "Xvfb's display number", 20);
  return ":" + out.trim();
}

// launchWebKit starts WebKitWebDriver (Debian's webkit2gtk-driver) on a
// free port and opens one session of WebKitGTK's MiniBrowser in it. The
// client is selenium-webdriver pointed at that driver (usingServer), so
// its selenium-manager, which would look for or download a driver, never
// runs; SE_OFFLINE forbids it downloading anything all the same. The
// driver allows one session at a time; the test pages are its windows.
async function launchWebKit() {
  process.env.SE_OFFLINE = "true";
  const { Builder } = require("selenium-webdriver");
  const display = which("Xvfb") ? await startXvfb() : process.env.DISPLAY;
  const port = await freePort();
  const driverEnv = Object.assign({}, process.env, {
    DISPLAY: display,
    GDK_BACKEND: "x11",
    NO_AT_BRIDGE: "1", // no accessibility bus to look for
    WEBKIT_DISABLE_COMPOSITING_MODE: "1", // no GPU under Xvfb
  });
  const proc = track(spawn(WEBKIT_DRIVER, [`--port=${port}`, "--host=local"], { stdio: ["ignore", "ignore", "pipe"], env: driverEnv }));
  const logs = [];
  proc.stderr.setEncoding("utf8");
  proc.stderr.on("data", (d) => { logs.push(d); if (logs.length > 500) logs.shift(); });
  let spawnError = null;
  proc.once("error", (e) => { spawnError = e; });
  onCleanup(() => { proc.kill("SIGTERM"); });
  const server = `http://127.0.0.1:${port}`;
  await until(async () => {
    if (spawnError) throw spawnError;
    if (proc.exitCode !== null) throw new Error("WebKitWebDriver exited:\n" + logs.join(""));
    try {
      return (await fetch(server + "/status")).status === 200;
    } catch (_) {
      return false;
    }
  }, 15000, "WebKitWebDriver ready", 50);
  const driver = await new Builder()
    .usingServer(server)
    .disableEnvironmentOverrides()
    .withCapabilities({
      browserName: "MiniBrowser",
      "webkitgtk:browserOptions": { binary: MINIBROWSER, args: ["--automation"] },
    })
    .build();
  const browser = new WebKitBrowser(driver, await driver.getWindowHandle(), logs);
  onCleanup(() => browser.close());
  return browser;
}

// WebKitBrowser gives a WebDriver session the little of playwright's and
// puppeteer's interface that the suites use: newPage(), and pages with
// goto, evaluate, waitForFunction, reload, goBack and close. A session
// runs its commands in one window at a time, so every command goes
// through one queue that first switches to its page's window. The
// session's first window stays open (closing the last one would end the
// session) as the one to return to.
class WebKitBrowser {
  constructor(driver, home, logs) {
    this.driver = driver;
    this.home = home;
    this.current = home;
    this.logs = logs;
    this.queue = Promise.resolve();
    this.pages = new Set();
  }

  run(handle, fn) {
    const p = this.queue.then(async () => {
      if (handle && this.current !== handle) {
        await this.driver.switchTo().window(handle);
        this.current = handle;
      }
      return fn(this.driver);
    });
    this.queue = p.catch(() => {});
    return p;
  }

  // newPage opens a page in a window of its own (shown, as a page in its
  // own window is), or with {tab: true} in a new tab of the home window,
  // where it stays in the background (document.visibilityState "hidden").
  async newPage({ tab = false } = {}) {
    const handle = await this.run(this.home, async (d) => {
      await d.switchTo().newWindow(tab ? "tab" : "window");
      this.current = await d.getWindowHandle();
      return this.current;
    });
    const page = new WebKitPage(this, handle);
    this.pages.add(page);
    return page;
  }

  // closePages closes the pages still open (a test that failed half-way
  // left them), so that the next test counts only its own connections.
  async closePages() {
    for (const p of [...this.pages]) await p.close().catch(() => {});
  }

  async close() {
    await this.driver.quit().catch(() => {});
  }
}

class WebKitPage {
  constructor(browser, handle) {
    this.browser = browser;
    this.handle = handle;
    this.closed = false;
  }

  run(fn) {
    if (this.closed) return Promise.reject(new Error("the page is closed"));
    return this.browser.run(this.handle, fn);
  }

  goto(url) {
    return this.run((d) => d.get(url));
  }

  reload() {
    return this.run((d) => d.navigate().refresh());
  }

  goBack() {
    return this.run((d) => d.navigate().back());
  }

  // evaluate runs fn (a function, sent as its source) in the page with
  // args; a promise it returns is awaited, as WebDriver's Execute Script
  // does.
  evaluate(fn, ...args) {
    return this.run((d) => d.executeScript(`return (${fn}).apply(null, arguments);`, ...args));
  }

  // frame(i) is the page's i-th iframe, with evaluate and waitForFunction.
  frame(i) {
    const page = this;
    return {
      evaluate(fn, ...args) {
        return page.run(async (d) => {
          await d.switchTo().frame(i);
          try {
            return await d.executeScript(`return (${fn}).apply(null, arguments);`, ...args);
          } finally {
            await d.switchTo().defaultContent();
          }
        });
      },
      waitForFunction: WebKitPage.prototype.waitForFunction,
    };
  }

  async waitForFunction(fn, arg, { timeout = 10000 } = {}) {
    let value;
    await until(async () => {
      value = await this.evaluate(fn, arg);
      return value;
    }, timeout, `page function ${String(fn).slice(0, 80)}`, 50);
    return value;
  }

  async close() {
    if (this.closed) return;
    this.browser.pages.delete(this);
    await this.run(async (d) => {
      await d.close();
      this.closed = true;
      await d.switchTo().window(this.browser.home);
      this.browser.current = this.browser.home;
    });
  }
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
      tokenCalls: H.tokenCalls, pageshows: H.pageshows, visibility: document.visibilityState,
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
  STRICT, WEB, ROOT, CHROMIUM, FIREFOX, WEBKIT_DRIVER, MINIBROWSER, CHROMIUM_FLAGS,
  sleep, until, which, missing, skipOrFail, freePort, settle,
  startRedis, startNode, nodeBinary, publish, mintToken, connections,
  startPageServer, startBufferingProxy, launchChromium, launchFirefox, launchWebKit, stopAll, uniqueClient,
  startRig, openPage, pageState, waitForPage,
};
