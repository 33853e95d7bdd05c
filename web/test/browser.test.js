// cometbox.js in Chromium (playwright-core, Debian's /usr/bin/chromium)
// against real cometbox nodes on a real redis-server, all on loopback.
// Test pages are served from another origin (a tiny Node server) and load
// the client from a node, as an application's pages would.
"use strict";

const { describe, it, before, after, afterEach } = require("node:test");
const assert = require("node:assert/strict");
const fs = require("node:fs");
const path = require("node:path");
const env = require("./support/env.js");

const { sleep, until, publish, connections, uniqueClient } = env;

const skip = env.skipOrFail(["redis-server", "chromium", "node-binary"]);

const snapshot = env.pageState;
const waitFor = env.waitForPage;

describe("cometbox.js in Chromium against real nodes", { skip }, () => {
  let redis, A, B, pages, browser;
  const contexts = [];

  before(async () => {
    ({ redis, pages, A, B, browser } = await env.startRig(env.launchChromium));
  });

  after(() => env.stopAll());

  afterEach(async () => {
    while (contexts.length) await contexts.pop().close().catch(() => {});
  });

  async function context() {
    const ctx = await browser.newContext();
    contexts.push(ctx);
    return ctx;
  }

  const open = env.openPage;

  // requests records the node requests a page makes.
  function requests(page) {
    const seen = [];
    page.on("request", (r) => {
      const u = new URL(r.url());
      if (["/poll", "/stream", "/ack"].includes(u.pathname)) {
        seen.push({ path: u.pathname, method: r.method(), since: u.searchParams.get("since"), origin: u.origin, at: Date.now() });
      }
    });
    return seen;
  }

  it("a node serves the client files with an ETag, revalidated (no-cache)", async () => {
    for (const [name, type] of [["cometbox.js", /javascript/], ["cometbox.mjs", /javascript/], ["cometbox.d.ts", /text/]]) {
      const r = await fetch(`${B.url}/${name}`);
      assert.equal(r.status, 200, `the node does not serve /${name} (is it in web/web.go's go:embed line?)`);
      assert.match(r.headers.get("content-type"), type);
      assert.equal(r.headers.get("cache-control"), "no-cache");
      const etag = r.headers.get("etag");
      assert.ok(etag, `${name}: ETag`);
      assert.equal(await r.text(), fs.readFileSync(path.join(env.WEB, name), "utf8"), `${name}: the node serves this tree's file`);
      const again = await fetch(`${B.url}/${name}`, { headers: { "If-None-Match": etag } });
      assert.equal(again.status, 304, `${name}: revalidated`);
    }
  });

  for (const transport of ["longpoll", "sse"]) {
    it(`${transport}: messages published through node A arrive in a page on node B, in order, once`, async () => {
      const client = uniqueClient(transport);
      const page = await open(await context(), pages.page(`${B.url}/cometbox.js`, { url: B.url, client, transport }));
      const reqs = requests(page);
      await waitFor(page, (s) => s.state === "connected", "connected");
      for (let i = 1; i <= 5; i++) await publish(A.url, client, { n: i, text: "hello " + i });
      const s = await waitFor(page, (s) => s.msgs.length >= 5, "5 messages");
      await sleep(300);
      const after = await snapshot(page);
      assert.deepEqual(after.msgs.map((m) => m.id), [1, 2, 3, 4, 5]);
      assert.deepEqual(after.msgs.map((m) => m.data.n), [1, 2, 3, 4, 5]);
      assert.equal(s.transport, transport);
      assert.deepEqual(after.errors, []);
      if (transport === "sse") {
        // Background acknowledgement while the stream stays open.
        await until(() => reqs.some((r) => r.path === "/ack" && r.since && r.since.endsWith(":5")), 5000, "an ack of 5");
        assert.ok(reqs.every((r) => r.path !== "/ack" || r.method === "POST"));
        await page.evaluate(() => window.H.cb.stop());
        // The node knows: a poll without a cursor starts after 5.
        await publish(A.url, client, "six");
        const r = await fetch(`${B.url}/poll?client=${client}`);
        assert.deepEqual(await r.json(), [{ id: 6, data: "six" }]);
      } else {
        assert.ok(reqs.every((r) => r.path === "/poll"));
      }
    });
  }

  it("auto: a proxy that buffers the event stream: the page falls back to long-poll by itself", async () => {
    const proxy = await env.startBufferingProxy(B.url);
    const client = uniqueClient("buffered");
    const page = await open(await context(), pages.page(`${B.url}/cometbox.js`, { url: proxy.url, client, helloTimeout: 1500 }));
    const s = await waitFor(page, (s) => s.transport === "longpoll" && s.state === "connected", "long-polling through the proxy", 8000);
    assert.ok(s.errors.some((e) => e.code === "sse_buffered"), JSON.stringify(s.errors));
    await publish(A.url, client, "through the proxy");
    const t = await waitFor(page, (s) => s.msgs.length === 1, "the message");
    assert.equal(t.msgs[0].data, "through the proxy");
    assert.equal(t.transport, "longpoll");
  });

  it("as an ES module: import { Cometbox } from \"/cometbox.mjs\"", async () => {
    const client = uniqueClient("esm");
    const page = await open(await context(), pages.page(`${B.url}/cometbox.mjs`, { url: B.url, client }, { module: "1" }));
    await waitFor(page, (s) => s.state === "connected", "connected");
    await publish(A.url, client, "via module");
    const s = await waitFor(page, (s) => s.msgs.length === 1, "a message");
    assert.equal(s.msgs[0].data, "via module");
    assert.equal(s.transport, "sse", "auto prefers SSE where EventSource exists");
  });

  for (const transport of ["longpoll", "sse"]) {
    it(`${transport}: a reload resumes from the cursor in sessionStorage, without replay`, async () => {
      const client = uniqueClient("reload");
      const page = await open(await context(), pages.page(`${B.url}/cometbox.js`, { url: B.url, client, transport, ackInterval: 60000 }));
      await waitFor(page, (s) => s.state === "connected", "connected");
      for (let i = 1; i <= 3; i++) await publish(A.url, client, "m" + i);
      const before = await waitFor(page, (s) => s.msgs.length === 3, "3 messages");
      const reqs = requests(page);
      await page.reload();
      await page.waitForFunction(() => window.H && window.H.loaded);
      await until(() => reqs.length > 0, 5000, "a request after the reload");
      assert.equal(reqs[0].since, before.cursor, "the reloaded page resumes from its cursor");
      await waitFor(page, (s) => s.state === "connected", "connected again");
      await publish(A.url, client, "m4");
      await waitFor(page, (s) => s.msgs.length >= 1, "m4");
      await sleep(300);
      const s = await snapshot(page);
      assert.deepEqual(s.msgs.map((m) => m.data), ["m4"], "nothing replayed");
    });
  }

  for (const [transport, how] of [["longpoll", "kill"], ["sse", "kill"], ["sse", "drain"]]) {
    it(`${transport}: a node ${how === "kill" ? "killed" : "drained (SIGTERM)"} while the page holds a connection: on to the next URL, nothing lost`, async () => {
      const C = await env.startNode({ redis, name: "c", args: ["-cors-origins", pages.origin, "-poll-timeout", "5s", "-drain-spread", "200ms"] });
      const client = uniqueClient("failover");
      const page = await open(await context(), pages.page(`${B.url}/cometbox.js`, { url: [C.url, B.url], client, transport }));
      await waitFor(page, (s) => s.state === "connected", "connected");
      await until(async () => (await connections(C.url)).total === 1, 5000, "the connection on c");
      await publish(B.url, client, "m1");
      await waitFor(page, (s) => s.msgs.length === 1, "m1");
      if (how === "kill") await C.kill();
      else await C.stop("SIGTERM");
      await publish(B.url, client, "m2");
      await publish(B.url, client, "m3");
      const s = await waitFor(page, (s) => s.msgs.length >= 3, "m2 and m3 through b", 15000);
      await sleep(300);
      const t = await snapshot(page);
      assert.deepEqual(t.msgs.map((m) => m.data), ["m1", "m2", "m3"]);
      assert.equal(s.url, B.url);
      assert.equal(t.state, "connected");
    });
  }

  for (const transport of ["sse", "longpoll"]) {
    it(`${transport}: tabs of one client share one connection; the leader's tab closes, another takes over, nothing lost or twice`, async () => {
      const ctx = await context();
      const client = uniqueClient("shared");
      const url = pages.page(`${B.url}/cometbox.js`, { url: B.url, client, transport, shared: true });
      const p1 = await open(ctx, url);
      await waitFor(p1, (s) => s.role === "leader" && s.state === "connected", "p1 leads");
      const p2 = await open(ctx, url);
      const p3 = await open(ctx, url);
      for (const p of [p2, p3]) await waitFor(p, (s) => s.role === "follower" && s.state === "connected", "a follower");
      await until(async () => (await connections(B.url)).total === 1, 5000, "one connection");
      await sleep(500);
      assert.equal((await connections(B.url)).total, 1, "three tabs, one connection");
      assert.equal((await connections(A.url)).total, 0);
      for (let i = 1; i <= 3; i++) await publish(A.url, client, "m" + i);
      for (const p of [p1, p2, p3]) await waitFor(p, (s) => s.msgs.length === 3, "m1..m3 in every tab");
      // The leader's tab closes; messages keep coming meanwhile.
      await p1.close();
      await publish(A.url, client, "m4");
      const leader = await until(async () => {
        for (const p of [p2, p3]) if ((await snapshot(p)).role === "leader") return p;
        return null;
      }, 5000, "a new leader");
      const follower = leader === p2 ? p3 : p2;
      await waitFor(leader, (s) => s.state === "connected", "the new leader connected");
      await publish(A.url, client, "m5");
      for (const p of [p2, p3]) await waitFor(p, (s) => s.msgs.length >= 5, "m4, m5");
      await sleep(500);
      for (const p of [leader, follower]) {
        const s = await snapshot(p);
        assert.deepEqual(s.msgs.map((m) => m.data), ["m1", "m2", "m3", "m4", "m5"]);
        assert.deepEqual(s.gaps, []);
      }
      assert.equal((await snapshot(follower)).role, "follower");
      await until(async () => (await connections(B.url)).total === 1, 5000, "one connection again");
    });
  }

  describe("tokens", () => {
    const secret = "web-test-secret";
    let T;
    before(async () => {
      T = await env.startNode({ redis, name: "t", args: ["-cors-origins", pages.origin, "-token-secret", secret, "-token-leeway", "0s", "-poll-timeout", "1s"] });
    });

    async function tokenPage(client, transport, lifetime) {
      const ctx = await context();
      let calls = 0;
      await ctx.exposeFunction("mintToken", (c) => {
        calls++;
        return env.mintToken(secret, c, Math.floor(Date.now() / 1000) + lifetime);
      });
      const page = await open(ctx, pages.page(`${T.url}/cometbox.js`, { url: T.url, client, transport, tokenFromTest: true, pollTimeout: 1000 }));
      return { page, calls: () => calls };
    }

    it("longpoll: an expired token is refreshed through the token function and the page goes on", async () => {
      const client = uniqueClient("tok");
      const { page, calls } = await tokenPage(client, "longpoll", 2);
      await waitFor(page, (s) => s.state === "connected", "connected");
      await publish(T.url, client, "before expiry");
      await waitFor(page, (s) => s.msgs.length === 1, "a message");
      await waitFor(page, (s) => s.errors.some((e) => e.code === "token_expired"), "a token_expired", 8000);
      await publish(T.url, client, "after refresh");
      const s = await waitFor(page, (s) => s.msgs.length === 2, "a message after the refresh");
      assert.ok(calls() >= 2, "the token function was called again");
      assert.ok(s.errors.every((e) => !e.fatal));
      assert.deepEqual(s.msgs.map((m) => m.data), ["before expiry", "after refresh"]);
    });

    it("sse: a stream outlives its token; a refused ack calls the token function and acks again", async () => {
      const client = uniqueClient("toksse");
      const { page, calls } = await tokenPage(client, "sse", 2);
      const reqs = requests(page);
      await waitFor(page, (s) => s.state === "connected" && s.transport === "sse", "streaming");
      await sleep(3500); // the token expires while the stream stays open
      await publish(T.url, client, "m1");
      await waitFor(page, (s) => s.msgs.length === 1, "m1 over the open stream");
      await until(() => calls() >= 2, 5000, "the token function called after a refused ack");
      await until(() => reqs.filter((r) => r.path === "/ack").length >= 2, 5000, "the ack again");
      const s = await snapshot(page);
      assert.ok(s.errors.every((e) => !e.fatal), JSON.stringify(s.errors));
      assert.equal(s.transport, "sse");
    });

    it("a token the node refuses, with no function to refresh it: stop and report", async () => {
      const client = uniqueClient("bad");
      const page = await open(await context(), pages.page(`${T.url}/cometbox.js`, { url: T.url, client, token: "1.bogus" }));
      const s = await waitFor(page, (s) => s.state === "disconnected" && s.errors.some((e) => e.fatal), "a fatal error");
      const fatal = s.errors.find((e) => e.fatal);
      assert.equal(fatal.status, 403);
      assert.ok(["token_invalid", "token_expired"].includes(fatal.code), fatal.code);
    });
  });

  it("503 while Redis is down, honouring Retry-After; recovers when it is back (with a reset: its data is gone)", async () => {
    const R = await env.startRedis();
    const N = await env.startNode({ redis: R, name: "r", args: ["-cors-origins", pages.origin, "-poll-timeout", "2s"] });
    const client = uniqueClient("redis");
    const page = await open(await context(), pages.page(`${N.url}/cometbox.js`, { url: N.url, client, transport: "longpoll", pollTimeout: 2000 }));
    await waitFor(page, (s) => s.state === "connected", "connected");
    await publish(N.url, client, "m1");
    await waitFor(page, (s) => s.msgs.length === 1, "m1");
    await R.stop();
    const down = await waitFor(page, (s) => s.errors.some((e) => e.status === 503), "a 503", 15000);
    const e503 = down.errors.find((e) => e.status === 503);
    assert.equal(e503.code, "unavailable");
    assert.ok(e503.retryIn >= 1000, "Retry-After honoured: " + e503.retryIn);
    await env.startRedis(R.port);
    await until(async () => {
      try {
        await publish(N.url, client, "m2");
        return true;
      } catch (e) {
        return false;
      }
    }, 20000, "publishing again", 200);
    const s = await waitFor(page, (s) => s.msgs.some((m) => m.data === "m2"), "m2 after recovery", 20000);
    assert.ok(s.resets >= 1, "the application was told of the reset");
    assert.deepEqual(s.msgs.map((m) => m.data), ["m1", "m2"]);
    assert.equal(s.state, "connected");
  });

  it("CORS: a listed origin reads polls and streams; another origin is refused by the browser", async () => {
    // The node's answers (the browser's view is below).
    const pre = await fetch(`${B.url}/stream`, { method: "OPTIONS", headers: { Origin: pages.origin, "Access-Control-Request-Method": "GET", "Access-Control-Request-Headers": "last-event-id" } });
    assert.equal(pre.status, 204);
    assert.match(pre.headers.get("access-control-allow-methods"), /GET/);
    assert.match(pre.headers.get("access-control-allow-headers"), /Last-Event-ID/i);
    const other = await env.startPageServer();
    const preOther = await fetch(`${B.url}/poll`, { method: "OPTIONS", headers: { Origin: other.origin, "Access-Control-Request-Method": "GET" } });
    assert.notEqual(preOther.status, 204);
    const ac = new AbortController();
    const st = await fetch(`${B.url}/stream?client=cors-probe`, { headers: { Origin: pages.origin }, signal: ac.signal });
    assert.equal(st.headers.get("access-control-allow-origin"), pages.origin);
    assert.match(st.headers.get("vary") || "", /Origin/);
    assert.match(st.headers.get("access-control-expose-headers"), /Cometbox-Cursor/);
    assert.equal(st.headers.get("access-control-allow-credentials"), null);
    ac.abort();

    // In the browser: the page on the other origin gets nothing and says why.
    const client = uniqueClient("cors");
    const page = await open(await context(), other.page(`${B.url}/cometbox.js`, { url: B.url, client, minDelay: 100, maxDelay: 400 }));
    await waitFor(page, (s) => s.errors.filter((e) => e.code === "network").length >= 2, "refused requests");
    await publish(A.url, client, "secret");
    await sleep(1000);
    const s = await snapshot(page);
    assert.deepEqual(s.msgs, []);
    assert.notEqual(s.state, "connected");
    // The same client on the listed origin gets it.
    const good = await open(await context(), pages.page(`${B.url}/cometbox.js`, { url: B.url, client }));
    await waitFor(good, (s) => s.msgs.length === 1, "the message on the listed origin");
  });

  it("offline then online: the page waits, then reconnects at once", async () => {
    const ctx = await context();
    const client = uniqueClient("offline");
    const page = await open(ctx, pages.page(`${B.url}/cometbox.js`, { url: B.url, client, transport: "longpoll", maxDelay: 60000 }));
    await waitFor(page, (s) => s.state === "connected", "connected");
    await ctx.setOffline(true);
    await waitFor(page, (s) => s.state === "connecting", "connecting while offline");
    await publish(A.url, client, "while offline");
    await sleep(300);
    assert.equal((await snapshot(page)).msgs.length, 0);
    const t = Date.now();
    await ctx.setOffline(false);
    await waitFor(page, (s) => s.msgs.length === 1, "the message once online", 5000);
    assert.ok(Date.now() - t < 3000, "reconnected at once, not after a long backoff");
  });

  it("the demo page (a node as `go run ./cmd/cometbox` starts it): publish from its form, messages arrive; screenshot", async () => {
    // No -redis-url: the embedded Redis, where demo mode is on by default.
    const D = await env.startNode({ name: "demo" });
    const ctx = await context();
    const page = await ctx.newPage();
    await page.setViewportSize({ width: 1100, height: 900 });
    const client = "alice";
    const r = await fetch(`${D.url}/demo/`);
    assert.equal(r.status, 200, "the node does not serve /demo/ (is demo in web/web.go's go:embed line?)");
    await page.goto(`${D.url}/demo/`);
    await page.waitForSelector("#state.connected", { timeout: 10000 });
    await page.fill("#data", "Hello from the demo form");
    await page.click("#publish button[type=submit]");
    await page.waitForSelector("#messages li", { timeout: 5000 });
    await page.check("#as-json");
    await page.fill("#data", '{"score": 3, "player": "alice"}');
    await page.click("#publish button[type=submit]");
    await publish(D.url, client, "published by a back end with POST /publish");
    await page.waitForFunction(() => document.querySelectorAll("#messages li").length === 3, null, { timeout: 5000 });
    const texts = await page.$$eval("#messages li .data", (els) => els.map((e) => e.textContent));
    assert.equal(texts.length, 3);
    assert.ok(texts.includes("Hello from the demo form"));
    assert.ok(texts.some((t) => t.includes('"score": 3')));
    assert.equal(await page.textContent("#count"), "3");
    const dir = path.join(env.ROOT, ".artifacts");
    fs.mkdirSync(dir, { recursive: true });
    const file = path.join(dir, "demo.png");
    await page.screenshot({ path: file, fullPage: true });
    console.log(`demo screenshot: ${file}`);
  });
});
