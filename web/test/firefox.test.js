// cometbox.js in Firefox ESR (Debian's /usr/bin/firefox-esr, driven by
// puppeteer-core over WebDriver BiDi) against real nodes on a real
// redis-server: the main paths, to catch what differs from Chromium.
"use strict";

const { describe, it, before, after } = require("node:test");
const assert = require("node:assert/strict");
const env = require("./support/env.js");

const { sleep, until, publish, connections, uniqueClient } = env;

const skip = env.skipOrFail(["redis-server", "firefox", "node-binary"]);

const snapshot = env.pageState;
const waitFor = (page, pred, what, ms = 10000) => env.waitForPage(page, pred, what, ms, 50);

describe("cometbox.js in Firefox ESR against real nodes", { skip }, () => {
  let redis, A, B, pages, browser;

  before(async () => {
    ({ redis, pages, A, B, browser } = await env.startRig(env.launchFirefox));
  });

  after(() => env.stopAll());

  const open = (url, ctx) => env.openPage(ctx || browser, url);

  for (const transport of ["longpoll", "sse"]) {
    it(`${transport}: published through node A, received on node B, in order, once; a reload resumes without replay`, async () => {
      const client = uniqueClient("ff-" + transport);
      const page = await open(pages.page(`${B.url}/cometbox.js`, { url: B.url, client, transport, ackInterval: 60000 }));
      await waitFor(page, (s) => s.state === "connected", "connected");
      for (let i = 1; i <= 3; i++) await publish(A.url, client, "m" + i);
      const s = await waitFor(page, (s) => s.msgs.length >= 3, "3 messages");
      assert.deepEqual(s.msgs.map((m) => m.data), ["m1", "m2", "m3"]);
      assert.equal(s.transport, transport);
      await page.reload();
      await page.waitForFunction(() => window.H && window.H.loaded);
      await waitFor(page, (s) => s.state === "connected", "connected after the reload");
      await publish(A.url, client, "m4");
      await waitFor(page, (s) => s.msgs.length >= 1, "m4");
      await sleep(300);
      assert.deepEqual((await snapshot(page)).msgs.map((m) => m.data), ["m4"], "nothing replayed");
      await page.close();
    });
  }

  it("a node killed under the page: on to the next URL, nothing lost", async () => {
    const C = await env.startNode({ redis, name: "c", args: ["-cors-origins", pages.origin, "-poll-timeout", "5s"] });
    const client = uniqueClient("ff-failover");
    const page = await open(pages.page(`${B.url}/cometbox.js`, { url: [C.url, B.url], client }));
    await waitFor(page, (s) => s.state === "connected", "connected");
    await until(async () => (await connections(C.url)).total === 1, 5000, "the stream on c");
    await publish(B.url, client, "m1");
    await waitFor(page, (s) => s.msgs.length === 1, "m1");
    await C.kill();
    await publish(B.url, client, "m2");
    const s = await waitFor(page, (s) => s.msgs.length >= 2, "m2 through b", 15000);
    assert.deepEqual(s.msgs.map((m) => m.data), ["m1", "m2"]);
    assert.equal(s.url, B.url);
    await page.close();
  });

  it("shared: two tabs, one connection; the leader closes, the other takes over", async () => {
    const ctx = await browser.createBrowserContext();
    const client = uniqueClient("ff-shared");
    const url = pages.page(`${B.url}/cometbox.js`, { url: B.url, client, shared: true });
    const p1 = await open(url, ctx);
    await waitFor(p1, (s) => s.role === "leader" && s.state === "connected", "p1 leads");
    const p2 = await open(url, ctx);
    await waitFor(p2, (s) => s.role === "follower" && s.state === "connected", "p2 follows");
    await until(async () => (await connections(B.url)).total === 1, 5000, "one connection");
    await publish(A.url, client, "m1");
    for (const p of [p1, p2]) await waitFor(p, (s) => s.msgs.length === 1, "m1 in both tabs");
    await p1.close();
    await publish(A.url, client, "m2");
    await waitFor(p2, (s) => s.role === "leader" && s.state === "connected", "p2 takes over");
    await publish(A.url, client, "m3");
    await waitFor(p2, (s) => s.msgs.length >= 3, "m2, m3");
    await sleep(300);
    assert.deepEqual((await snapshot(p2)).msgs.map((m) => m.data), ["m1", "m2", "m3"]);
    await ctx.close();
  });
});
