// cometbox.js in WebKit, the engine of Safari: WebKitGTK's MiniBrowser
// (Debian's libwebkit2gtk-4.1-0) driven through its WebKitWebDriver
// (webkit2gtk-driver) by selenium-webdriver, under a private Xvfb, against
// real nodes on a real redis-server. The scenarios of the Chromium and
// Firefox suites, plus what Safari does its own way: the back/forward
// cache, and tabs in the background.
"use strict";

const { describe, it, before, after, afterEach } = require("node:test");
const assert = require("node:assert/strict");
const env = require("./support/env.js");

const { sleep, until, publish, connections, uniqueClient } = env;

const skip = env.skipOrFail(["redis-server", "webkit", "node-binary"]);

const snapshot = env.pageState;
const waitFor = (page, pred, what, ms = 10000) => env.waitForPage(page, pred, what, ms, 50);

describe("cometbox.js in WebKitGTK against real nodes", { skip }, () => {
  let redis, A, B, pages, browser;

  before(async () => {
    ({ redis, pages, A, B, browser } = await env.startRig(env.launchWebKit));
  });

  after(() => env.stopAll());

  afterEach(() => browser && browser.closePages());

  const open = (url, opts) => env.openPage({ newPage: () => browser.newPage(opts) }, url);

  it("the engine: WebKit, with EventSource, BroadcastChannel and Web Locks", async () => {
    const page = await open(pages.page(`${B.url}/cometbox.js`));
    const f = await page.evaluate(() => ({
      ua: navigator.userAgent,
      es: typeof EventSource,
      bc: typeof BroadcastChannel,
      locks: !!(navigator.locks && navigator.locks.request),
      secure: window.isSecureContext,
    }));
    assert.match(f.ua, /AppleWebKit\/.*Safari/);
    assert.doesNotMatch(f.ua, /Chrome|Firefox/);
    assert.equal(f.es, "function");
    assert.equal(f.bc, "function");
    assert.equal(f.locks, true, "Web Locks on a loopback origin (a secure context)");
    await page.close();
  });

  for (const transport of ["longpoll", "sse"]) {
    it(`${transport}: published through node A, received on node B, in order, once; a reload resumes without replay`, async () => {
      const client = uniqueClient("wk-" + transport);
      const page = await open(pages.page(`${B.url}/cometbox.js`, { url: B.url, client, transport, ackInterval: 60000 }));
      await waitFor(page, (s) => s.state === "connected", "connected");
      for (let i = 1; i <= 5; i++) await publish(A.url, client, { n: i });
      const s = await waitFor(page, (s) => s.msgs.length >= 5, "5 messages");
      await sleep(300);
      const t = await snapshot(page);
      assert.deepEqual(t.msgs.map((m) => m.id), [1, 2, 3, 4, 5]);
      assert.deepEqual(t.msgs.map((m) => m.data.n), [1, 2, 3, 4, 5]);
      assert.equal(s.transport, transport);
      assert.deepEqual(t.errors, []);
      await page.reload();
      await page.waitForFunction(() => window.H && window.H.loaded);
      const r = await waitFor(page, (s) => s.state === "connected", "connected after the reload");
      assert.deepEqual(r.pageshows, [false], "a reload, not a page from the cache");
      assert.equal(r.cursor, t.cursor, "resumed from the cursor in sessionStorage");
      await publish(A.url, client, { n: 6 });
      await waitFor(page, (s) => s.msgs.length >= 1, "m6");
      await sleep(300);
      assert.deepEqual((await snapshot(page)).msgs.map((m) => m.data.n), [6], "nothing replayed");
      await page.close();
    });
  }

  it("auto: a proxy that buffers the event stream: the page falls back to long-poll by itself", async () => {
    const proxy = await env.startBufferingProxy(B.url);
    const client = uniqueClient("wk-buffered");
    const page = await open(pages.page(`${B.url}/cometbox.js`, { url: proxy.url, client, helloTimeout: 1500 }));
    const s = await waitFor(page, (s) => s.transport === "longpoll" && s.state === "connected", "long-polling through the proxy");
    assert.ok(s.errors.some((e) => e.code === "sse_buffered"), JSON.stringify(s.errors));
    await publish(A.url, client, "through the proxy");
    const t = await waitFor(page, (s) => s.msgs.length === 1, "the message");
    assert.equal(t.msgs[0].data, "through the proxy");
    assert.equal(t.transport, "longpoll");
    await page.close();
  });

  for (const transport of ["sse", "longpoll"]) {
    it(`${transport}: a node killed under the page: on to the next URL, nothing lost`, async () => {
      const C = await env.startNode({ redis, name: "c", args: ["-cors-origins", pages.origin, "-poll-timeout", "5s"] });
      const client = uniqueClient("wk-failover");
      const page = await open(pages.page(`${B.url}/cometbox.js`, { url: [C.url, B.url], client, transport }));
      await waitFor(page, (s) => s.state === "connected", "connected");
      await until(async () => (await connections(C.url)).total === 1, 5000, "the connection on c");
      await publish(B.url, client, "m1");
      await waitFor(page, (s) => s.msgs.length === 1, "m1");
      await C.kill();
      await publish(B.url, client, "m2");
      await publish(B.url, client, "m3");
      const s = await waitFor(page, (s) => s.msgs.length >= 3, "m2 and m3 through b", 15000);
      await sleep(300);
      assert.deepEqual((await snapshot(page)).msgs.map((m) => m.data), ["m1", "m2", "m3"]);
      assert.equal(s.url, B.url);
      await page.close();
    });
  }

  // Two pages of one client in windows of their own; in background tabs,
  // hidden, where WebKit throttles timers; and as in Safari before 15.4,
  // without Web Locks and BroadcastChannel: a lease in localStorage and
  // its storage events.
  const variants = [
    { where: "in windows" },
    { where: "in background tabs", tab: true },
    { where: "without Web Locks or BroadcastChannel (Safari before 15.4)", opts: { locks: null, BroadcastChannel: null } },
  ];
  for (const v of variants) {
    it(`shared, ${v.where}: one connection; the leader closes, the other takes over, nothing lost or twice`, async (t) => {
      const client = uniqueClient("wk-shared");
      const url = pages.page(`${B.url}/cometbox.js`, Object.assign({ url: B.url, client, shared: true }, v.opts));
      const p1 = await open(url, { tab: v.tab });
      const l = await waitFor(p1, (s) => s.role === "leader" && s.state === "connected", "p1 leads");
      const p2 = await open(url, { tab: v.tab });
      const f = await waitFor(p2, (s) => s.role === "follower" && s.state === "connected", "p2 follows");
      assert.deepEqual([l.visibility, f.visibility], v.tab ? ["hidden", "hidden"] : ["visible", "visible"]);
      if (v.tab) {
        // WebKit aligns the repeating timers of hidden pages to a second.
        const ticks = await p1.evaluate(() => new Promise((r) => {
          let n = 0;
          const i = setInterval(() => n++, 50);
          setTimeout(() => { clearInterval(i); r(n); }, 1500);
        }));
        t.diagnostic(`a 50 ms interval in a background tab ticked ${ticks} times in 1.5 s`);
      }
      await until(async () => (await connections(B.url)).total === 1, 5000, "one connection");
      await sleep(500);
      assert.equal((await connections(B.url)).total, 1, "two pages, one connection");
      for (let i = 1; i <= 3; i++) await publish(A.url, client, "m" + i);
      for (const p of [p1, p2]) await waitFor(p, (s) => s.msgs.length === 3, "m1..m3 in both pages");
      await p1.close();
      await publish(A.url, client, "m4");
      await waitFor(p2, (s) => s.role === "leader" && s.state === "connected", "p2 takes over");
      await publish(A.url, client, "m5");
      await waitFor(p2, (s) => s.msgs.length >= 5, "m4, m5");
      await sleep(300);
      const s = await snapshot(p2);
      assert.deepEqual(s.msgs.map((m) => m.data), ["m1", "m2", "m3", "m4", "m5"]);
      assert.deepEqual(s.gaps, []);
      await until(async () => (await connections(B.url)).total === 1, 5000, "one connection again");
      await p2.close();
    });
  }

  // Safari's storage partitioning: an iframe on another site than the page
  // around it gets localStorage, BroadcastChannel and Web Locks of its own
  // for that top-level site. Frames under one site share a connection; the
  // frame's site opened as a page of its own is apart, with its own.
  it("shared in an iframe of another site: frames under one site share one connection; the site's own page has its own", async () => {
    const other = pages.origin.replace("127.0.0.1", "localhost"); // another site, same page server
    const N = await env.startNode({ redis, name: "p", args: ["-cors-origins", `${pages.origin},${other}`, "-poll-timeout", "5s"] });
    const client = uniqueClient("wk-partition");
    const inner = pages.page(`${N.url}/cometbox.js`, { url: N.url, client, shared: true }).replace(pages.origin, other);
    const framed = `${pages.origin}/frame.html?src=${encodeURIComponent(inner)}`;
    const frames = [];
    for (const role of ["leader", "follower"]) {
      const top = await browser.newPage();
      await top.goto(framed);
      const f = top.frame(0);
      await f.waitForFunction(() => window.H && window.H.loaded);
      await waitFor(f, (s) => s.role === role && s.state === "connected", `the ${role} frame`);
      frames.push({ top, f });
    }
    const own = await open(inner);
    await waitFor(own, (s) => s.role === "leader" && s.state === "connected", "the site's own page leads its own tabs");
    await until(async () => (await connections(N.url)).total === 2, 5000, "two connections: one per partition");
    await sleep(500);
    assert.equal((await connections(N.url)).total, 2);
    await publish(N.url, client, "m1");
    for (const p of [frames[0].f, frames[1].f, own]) await waitFor(p, (s) => s.msgs.length === 1, "m1 in every frame and page");
    await sleep(300);
    for (const p of [frames[0].f, frames[1].f, own]) assert.deepEqual((await snapshot(p)).msgs.map((m) => m.data), ["m1"]);
    for (const p of [frames[0].top, frames[1].top, own]) await p.close();
  });

  for (const transport of ["sse", "longpoll"]) {
    it(`${transport}: back/forward cache: the page lets go of its connection when it leaves, and resumes from the cache without replay`, async () => {
      const client = uniqueClient("wk-bfcache");
      const page = await open(pages.page(`${B.url}/cometbox.js`, { url: B.url, client, transport }));
      await waitFor(page, (s) => s.state === "connected", "connected");
      await until(async () => (await connections(B.url)).total === 1, 5000, "the connection");
      await publish(A.url, client, "m1");
      await waitFor(page, (s) => s.msgs.length === 1, "m1");
      await page.goto(`${pages.origin}/elsewhere`);
      await until(async () => (await connections(B.url)).total === 0, 5000, "the connection given up");
      await publish(A.url, client, "m2");
      await page.goBack();
      const s = await waitFor(page, (s) => s.msgs.length >= 2, "m2 after coming back");
      assert.deepEqual(s.pageshows, [false, true], "restored from the back/forward cache, not loaded again");
      await sleep(300);
      const t = await snapshot(page);
      assert.deepEqual(t.msgs.map((m) => m.data), ["m1", "m2"], "m1 kept, m2 once");
      assert.equal(t.state, "connected");
      assert.equal(t.transport, transport);
      await page.close();
    });
  }

  // The page keeps its state in the cache, so it must ask the leader for
  // what was relayed while it was away: here the client's first messages,
  // so that it knew no epoch yet.
  it("shared: a follower's page in the back/forward cache: back, it gets from the leader what it missed, once", async () => {
    const client = uniqueClient("wk-bffollower");
    const url = pages.page(`${B.url}/cometbox.js`, { url: B.url, client, shared: true });
    const p1 = await open(url);
    await waitFor(p1, (s) => s.role === "leader" && s.state === "connected", "p1 leads");
    const p2 = await open(url);
    await waitFor(p2, (s) => s.role === "follower" && s.state === "connected", "p2 follows");
    await p2.goto(`${pages.origin}/elsewhere`);
    await publish(A.url, client, "m1");
    await publish(A.url, client, "m2");
    await waitFor(p1, (s) => s.msgs.length === 2, "m1, m2 in p1");
    await p2.goBack();
    const s = await waitFor(p2, (s) => s.msgs.length >= 2, "p2 back, with m1 and m2");
    assert.deepEqual(s.pageshows, [false, true], "restored from the back/forward cache");
    assert.equal(s.role, "follower");
    await publish(A.url, client, "m3");
    for (const p of [p1, p2]) await waitFor(p, (s) => s.msgs.length >= 3, "m3 in both pages");
    await sleep(300);
    for (const p of [p1, p2]) {
      const t = await snapshot(p);
      assert.deepEqual(t.msgs.map((m) => m.data), ["m1", "m2", "m3"]);
      assert.deepEqual(t.gaps, []);
    }
    await until(async () => (await connections(B.url)).total === 1, 5000, "one connection");
    await p1.close();
    await p2.close();
  });

  it("shared: the leader's page goes into the back/forward cache: the other page takes over; back, it follows", async () => {
    const client = uniqueClient("wk-bfshared");
    const url = pages.page(`${B.url}/cometbox.js`, { url: B.url, client, shared: true });
    const p1 = await open(url);
    await waitFor(p1, (s) => s.role === "leader" && s.state === "connected", "p1 leads");
    const p2 = await open(url);
    await waitFor(p2, (s) => s.role === "follower" && s.state === "connected", "p2 follows");
    await publish(A.url, client, "m1");
    for (const p of [p1, p2]) await waitFor(p, (s) => s.msgs.length === 1, "m1 in both pages");
    await p1.goto(`${pages.origin}/elsewhere`);
    await waitFor(p2, (s) => s.role === "leader" && s.state === "connected", "p2 takes over");
    await publish(A.url, client, "m2");
    await waitFor(p2, (s) => s.msgs.length === 2, "m2 in p2");
    await p1.goBack();
    const s = await waitFor(p1, (s) => s.role === "follower" && s.msgs.length >= 2, "p1 back, following, with m2");
    assert.deepEqual(s.pageshows, [false, true]);
    await publish(A.url, client, "m3");
    for (const p of [p1, p2]) await waitFor(p, (s) => s.msgs.length >= 3, "m3 in both pages");
    await sleep(300);
    for (const p of [p1, p2]) assert.deepEqual((await snapshot(p)).msgs.map((m) => m.data), ["m1", "m2", "m3"]);
    await until(async () => (await connections(B.url)).total === 1, 5000, "one connection");
    await p1.close();
    await p2.close();
  });
});
