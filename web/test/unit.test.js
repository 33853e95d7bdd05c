// Unit tests of the client's logic under Node's own test runner: the pure
// helpers, and the connection loop driven by an injected fetch, a fake
// EventSource, a fake window and fake storage. No network, no browser.
"use strict";

const test = require("node:test");
const assert = require("node:assert/strict");
const Cometbox = require("../cometbox.js");

const { parseCursor, formatCursor, compareCursor, parseGap, parseRetryAfter, backoff, isNewMessage } = Cometbox.util;

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function until(cond, ms = 3000, what = "condition") {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (cond()) return;
    await sleep(5);
  }
  throw new Error("timed out waiting for " + what);
}

// fakeFetch answers each request with the next of `answers` (a function of
// (url, init) returning a Response or a promise), records every request,
// and holds the rest forever (until aborted).
function fakeFetch(answers) {
  const calls = [];
  const f = (url, init) => {
    const u = new URL(url, "http://node.test");
    const call = { url, path: u.pathname, origin: u.origin, q: Object.fromEntries(u.searchParams), init, at: Date.now() };
    calls.push(call);
    const a = answers.shift();
    const held = new Promise((resolve, reject) => {
      const abort = () => reject(Object.assign(new Error("aborted"), { name: "AbortError" }));
      if (init && init.signal) {
        if (init.signal.aborted) return abort();
        init.signal.addEventListener("abort", abort);
      }
      if (a) Promise.resolve().then(() => a(url, init, call)).then(resolve, reject);
    });
    return held;
  };
  f.calls = calls;
  return f;
}

function json(body, status = 200, headers = {}) {
  return () => new Response(typeof body === "string" ? body : JSON.stringify(body), {
    status,
    headers: Object.assign({ "Content-Type": "application/json" }, headers),
  });
}
function page(msgs, cursor, extra = {}) {
  return json(msgs, 200, Object.assign({ "Cometbox-Cursor": cursor }, extra));
}
function apiError(status, code, headers = {}) {
  return json({ error: { code, message: code + " explained" } }, status, headers);
}
function netError() {
  return () => Promise.reject(new TypeError("Failed to fetch"));
}

function memoryStorage() {
  const m = new Map();
  return {
    getItem: (k) => (m.has(k) ? m.get(k) : null),
    setItem: (k, v) => m.set(k, String(v)),
    removeItem: (k) => m.delete(k),
    map: m,
  };
}
const throwingStorage = {
  getItem() { throw new Error("SecurityError"); },
  setItem() { throw new Error("QuotaExceededError"); },
  removeItem() { throw new Error("SecurityError"); },
};

class FakeWindow extends EventTarget {}

class FakeES {
  constructor(url) {
    this.url = url;
    this.listeners = {};
    this.closed = false;
    this.onerror = null;
    FakeES.instances.push(this);
  }
  addEventListener(type, fn) {
    (this.listeners[type] = this.listeners[type] || []).push(fn);
  }
  emit(type, data, id = "") {
    for (const fn of this.listeners[type] || []) fn({ type, data: JSON.stringify(data), lastEventId: id });
  }
  fail() {
    if (this.onerror) this.onerror({ type: "error" });
  }
  close() {
    this.closed = true;
  }
}
FakeES.instances = [];

// newClient builds a client with recording callbacks and fast timings.
function newClient(opts) {
  const got = { messages: [], errors: [], states: [], gaps: [], resets: 0 };
  const cb = new Cometbox(Object.assign({
    url: "http://a.test",
    client: "alice",
    transport: "longpoll",
    probe: false,
    minDelay: 10,
    maxDelay: 40,
    sessionStorage: memoryStorage(),
    localStorage: memoryStorage(),
    window: null,
    document: null,
    locks: null,
    BroadcastChannel: null,
    onMessage: (m) => got.messages.push(m),
    onError: (e) => got.errors.push(e),
    onStateChange: (s) => got.states.push(s),
    onGap: (g) => got.gaps.push(g),
    onReset: () => got.resets++,
  }, opts));
  return { cb, got };
}

// ---- pure helpers ------------------------------------------------------------

test("parseCursor and formatCursor", () => {
  assert.deepEqual(parseCursor("k3x9q2ab:57"), { epoch: "k3x9q2ab", id: 57 });
  assert.deepEqual(parseCursor("57"), { epoch: "", id: 57 });
  assert.deepEqual(parseCursor(""), { epoch: "", id: 0 });
  assert.deepEqual(parseCursor(null), { epoch: "", id: 0 });
  assert.equal(parseCursor("K3:1"), null, "epochs are lower case");
  assert.equal(parseCursor("a:b"), null);
  assert.equal(parseCursor("a:-1"), null);
  assert.equal(parseCursor("a:1:2"), null);
  assert.equal(parseCursor("99999999999999999"), null, "beyond 16 digits");
  assert.equal(formatCursor({ epoch: "e1", id: 3 }), "e1:3");
  assert.equal(formatCursor({ epoch: "", id: 3 }), "3");
  assert.equal(formatCursor({ epoch: "", id: 0 }), "");
  assert.equal(formatCursor({ epoch: "e1", id: 0 }), "e1:0");
  assert.equal(formatCursor(parseCursor("zz:12")), "zz:12");
});

test("compareCursor orders within an epoch only", () => {
  assert.ok(compareCursor("e:5", "e:7") < 0);
  assert.ok(compareCursor("e:7", "e:5") > 0);
  assert.equal(compareCursor("e:7", "e:7"), 0);
  assert.ok(compareCursor("7", "e:5") > 0, "a bare id compares with any epoch");
  assert.ok(Number.isNaN(compareCursor("e:5", "f:5")));
  assert.ok(Number.isNaN(compareCursor("bad!", "e:5")));
});

test("isNewMessage dedupes by id within an epoch", () => {
  assert.equal(isNewMessage({ epoch: "e", id: 5 }, "e", 5), false);
  assert.equal(isNewMessage({ epoch: "e", id: 5 }, "e", 4), false);
  assert.equal(isNewMessage({ epoch: "e", id: 5 }, "e", 6), true);
  assert.equal(isNewMessage({ epoch: "e", id: 5 }, "f", 1), true, "another epoch is new (after a reset)");
  assert.equal(isNewMessage({ epoch: "", id: 0 }, "e", 1), true);
});

test("parseGap", () => {
  assert.deepEqual(parseGap("58-60"), { first: 58, last: 60 });
  assert.deepEqual(parseGap(" 1 - 1 "), { first: 1, last: 1 });
  assert.equal(parseGap(""), null);
  assert.equal(parseGap(null), null);
  assert.equal(parseGap("58"), null);
});

test("parseRetryAfter: seconds, HTTP dates, garbage", () => {
  assert.equal(parseRetryAfter("3"), 3000);
  assert.equal(parseRetryAfter(" 0 "), 0);
  assert.equal(parseRetryAfter(null), null);
  assert.equal(parseRetryAfter("soon"), null);
  assert.equal(parseRetryAfter("-1"), null);
  const now = Date.parse("Wed, 21 Oct 2015 07:28:00 GMT");
  assert.equal(parseRetryAfter("Wed, 21 Oct 2015 07:28:05 GMT", now), 5000);
  assert.equal(parseRetryAfter("Wed, 21 Oct 2015 07:27:00 GMT", now), 0, "a date past is now");
});

test("backoff: full jitter, exponential, capped", () => {
  assert.equal(backoff(0, 500, 20000, () => 0), 0);
  assert.equal(backoff(0, 500, 20000, () => 0.999999), 499);
  assert.equal(backoff(3, 500, 20000, () => 0.5), 2000);
  assert.equal(backoff(10, 500, 20000, () => 0.5), 10000, "capped");
  assert.equal(backoff(1000, 500, 20000, () => 0.999999), 19999, "huge attempts stay capped");
  for (let i = 0; i < 200; i++) {
    const d = backoff(i % 8, 100, 5000);
    assert.ok(d >= 0 && d < Math.min(5000, 100 * 2 ** (i % 8)));
  }
});

test("the module works as CommonJS and as an ES module, and types exist", async () => {
  assert.equal(typeof Cometbox, "function");
  assert.equal(Cometbox.Cometbox, Cometbox);
  const esm = await import("../cometbox.mjs");
  assert.equal(esm.Cometbox, Cometbox);
  assert.equal(esm.default, Cometbox);
  const fs = require("node:fs");
  const dts = fs.readFileSync(require.resolve("../cometbox.d.ts"), "utf8");
  for (const name of ["class Cometbox", "interface CometboxOptions", "onMessage", "onGap", "onReset", "transport", "shared", "start(): this", "stop(): this"]) {
    assert.ok(dts.includes(name), "cometbox.d.ts mentions " + name);
  }
  assert.throws(() => Cometbox({ client: "a" }), TypeError);
  assert.throws(() => new Cometbox({ url: "x" }), /client is required/);
  assert.throws(() => new Cometbox({ client: "a", transport: "ws" }), /transport/);
});

// ---- long-poll --------------------------------------------------------------

test("long-poll: delivers in id order, sends the cursor back, dedupes a repeated answer", async () => {
  const answer = page([{ id: 1, data: "a" }, { id: 2, data: { b: 2 } }], "ep:2");
  const f = fakeFetch([
    answer,
    // The answer to since=ep:2 was "lost" on the way and the same page comes
    // again, plus one more (as a re-poll with an old cursor would get).
    page([{ id: 1, data: "a" }, { id: 2, data: { b: 2 } }, { id: 3, data: null }], "ep:3"),
  ]);
  const { cb, got } = newClient({ fetch: f, url: "http://a.test/" });
  cb.start();
  await until(() => got.messages.length === 3 && f.calls.length === 3);
  assert.deepEqual(got.messages, [{ id: 1, data: "a" }, { id: 2, data: { b: 2 } }, { id: 3, data: null }]);
  assert.equal(f.calls[0].q.since, undefined, "a fresh page sends no since");
  assert.equal(f.calls[0].q.client, "alice");
  assert.equal(f.calls[0].path, "/poll");
  assert.equal(f.calls[0].url.startsWith("http://a.test/poll?"), true, "the trailing slash is dropped");
  assert.equal(f.calls[0].init.credentials, "omit");
  assert.equal(f.calls[1].q.since, "ep:2");
  assert.equal(f.calls[2].q.since, "ep:3");
  assert.equal(cb.cursor, "ep:3");
  assert.deepEqual(got.states, ["connecting", "connected"]);
  cb.stop();
  assert.deepEqual(got.states, ["connecting", "connected", "disconnected"]);
});

test("long-poll: an empty answer moves the cursor to where the queue stands", async () => {
  const f = fakeFetch([page([], "ep:7"), page([{ id: 8, data: 8 }], "ep:8")]);
  const { cb, got } = newClient({ fetch: f });
  cb.start();
  await until(() => f.calls.length === 3);
  assert.equal(f.calls[1].q.since, "ep:7");
  assert.deepEqual(got.messages, [{ id: 8, data: 8 }]);
  cb.stop();
});

test("Cometbox-Gap is an event before the messages that follow it", async () => {
  const order = [];
  const f = fakeFetch([page([{ id: 1, data: 1 }], "ep:1"), page([{ id: 5, data: 5 }], "ep:5", { "Cometbox-Gap": "2-4" })]);
  const { cb, got } = newClient({ fetch: f, onGap: (g) => order.push(["gap", g]), onMessage: (m) => order.push(["msg", m.id]) });
  cb.start();
  await until(() => f.calls.length === 3);
  cb.stop();
  assert.deepEqual(order, [["msg", 1], ["gap", { first: 2, last: 4 }], ["msg", 5]]);
  assert.equal(got.errors.length, 0);
});

test("Cometbox-Reset forgets the old cursor, tells the application, delivers the new epoch", async () => {
  const store = memoryStorage();
  store.setItem("cometbox:http://a.test|alice", "old:40");
  const order = [];
  const f = fakeFetch([
    page([{ id: 1, data: "x" }, { id: 2, data: "y" }], "new:2", { "Cometbox-Reset": "1" }),
    page([{ id: 3, data: "z" }], "new:3"),
  ]);
  const { cb } = newClient({ fetch: f, sessionStorage: store, onReset: () => order.push("reset"), onMessage: (m) => order.push(m.id) });
  cb.start();
  await until(() => f.calls.length === 3);
  cb.stop();
  assert.equal(f.calls[0].q.since, "old:40", "resumes from sessionStorage");
  assert.deepEqual(order, ["reset", 1, 2, 3]);
  assert.equal(f.calls[1].q.since, "new:2");
  assert.equal(store.getItem("cometbox:http://a.test|alice"), "new:3");
});

// A sequence moved to a new Redis primary keeps its ids in a new epoch,
// and the node says so without a reset: the client follows, the ids it
// has stay had.
test("an answer in another epoch without a reset header continues the sequence in it", async () => {
  const store = memoryStorage();
  store.setItem("cometbox:http://a.test|alice", "old:9");
  const f = fakeFetch([page([{ id: 10, data: 10 }], "new:10"), page([{ id: 10, data: 10 }, { id: 11, data: 11 }], "new:11")]);
  const { cb, got } = newClient({ fetch: f, sessionStorage: store });
  cb.start();
  await until(() => f.calls.length === 3);
  cb.stop();
  assert.equal(got.resets, 0);
  assert.deepEqual(got.messages.map((m) => m.id), [10, 11], "message 10 once");
  assert.equal(f.calls[1].q.since, "new:10");
  assert.equal(store.getItem("cometbox:http://a.test|alice"), "new:11");
});

test("the cursor survives a reload (a new client on the same storage) and is keyed by url and client", async () => {
  const store = memoryStorage();
  const f1 = fakeFetch([page([{ id: 1, data: 1 }, { id: 2, data: 2 }], "ep:2")]);
  const a = newClient({ fetch: f1, sessionStorage: store });
  a.cb.start();
  await until(() => a.got.messages.length === 2);
  a.cb.stop();
  const f2 = fakeFetch([]);
  const b = newClient({ fetch: f2, sessionStorage: store });
  b.cb.start();
  await until(() => f2.calls.length === 1);
  assert.equal(f2.calls[0].q.since, "ep:2");
  b.cb.stop();
  const f3 = fakeFetch([]);
  const c = newClient({ fetch: f3, sessionStorage: store, client: "bob" });
  c.cb.start();
  await until(() => f3.calls.length === 1);
  assert.equal(f3.calls[0].q.since, undefined, "another client has its own cursor");
  c.cb.stop();
  const f4 = fakeFetch([]);
  const d = newClient({ fetch: f4, sessionStorage: store, resume: false });
  d.cb.start();
  await until(() => f4.calls.length === 1);
  assert.equal(f4.calls[0].q.since, undefined, "resume: false ignores the stored cursor");
  d.cb.stop();
});

test("storage that throws (private browsing) is survived", async () => {
  const f = fakeFetch([page([{ id: 1, data: 1 }], "ep:1")]);
  const { cb, got } = newClient({ fetch: f, sessionStorage: throwingStorage, localStorage: throwingStorage });
  cb.start();
  await until(() => got.messages.length === 1 && f.calls.length === 2);
  assert.equal(f.calls[1].q.since, "ep:1", "the cursor is kept in memory");
  cb.stop();
});

test("503 honours Retry-After", async () => {
  const f = fakeFetch([apiError(503, "unavailable", { "Retry-After": "1" }), page([{ id: 1, data: 1 }], "ep:1")]);
  const { cb, got } = newClient({ fetch: f });
  cb.start();
  await until(() => got.messages.length === 1, 4000);
  cb.stop();
  const waited = f.calls[1].at - f.calls[0].at;
  assert.ok(waited >= 950 && waited < 2000, "waited Retry-After (" + waited + " ms)");
  assert.equal(got.errors[0].code, "unavailable");
  assert.equal(got.errors[0].status, 503);
  assert.equal(got.errors[0].retryIn, 1000);
  assert.equal(got.errors[0].fatal, false);
  assert.ok(got.errors[0] instanceof Error && got.errors[0] instanceof Cometbox.CometboxError);
  assert.deepEqual(got.states, ["connecting", "connected", "disconnected"]);
});

test("503 fails over to the next node at once; a node is not asked again before its Retry-After", async () => {
  const f = fakeFetch([
    apiError(503, "overloaded", { "Retry-After": "1" }),
    apiError(503, "unavailable", { "Retry-After": "1" }),
    page([{ id: 1, data: 1 }], "ep:1"),
  ]);
  const { cb, got } = newClient({ fetch: f, url: ["http://a.test", "http://b.test"] });
  cb.start();
  await until(() => got.messages.length === 1, 4000);
  cb.stop();
  assert.deepEqual(f.calls.slice(0, 3).map((c) => c.origin), ["http://a.test", "http://b.test", "http://a.test"]);
  assert.ok(f.calls[1].at - f.calls[0].at < 200, "b at once");
  const waited = f.calls[2].at - f.calls[0].at;
  assert.ok(waited >= 950 && waited < 2000, "a again after its Retry-After (" + waited + " ms)");
  assert.deepEqual(got.errors.map((e) => e.code), ["overloaded", "unavailable"]);
});

test("429 honours Retry-After on the same node", async () => {
  const f = fakeFetch([apiError(429, "too_many_polls", { "Retry-After": "0" }), page([], "ep:0")]);
  const { cb, got } = newClient({ fetch: f, url: ["http://a.test", "http://b.test"] });
  cb.start();
  await until(() => f.calls.length >= 2);
  cb.stop();
  assert.equal(f.calls[1].origin, "http://a.test");
  assert.equal(got.errors[0].code, "too_many_polls");
});

test("network errors fail over across the URL list with a growing, capped backoff, reset after success", async () => {
  const f = fakeFetch([netError(), netError(), netError(), page([{ id: 1, data: 1 }], "ep:1"), netError(), page([], "ep:1")]);
  const { cb, got } = newClient({ fetch: f, url: ["http://a.test", "http://b.test", "http://c.test"], random: () => 0.999 });
  cb.start();
  await until(() => f.calls.length >= 6, 4000);
  cb.stop();
  assert.deepEqual(f.calls.slice(0, 5).map((c) => c.origin), ["http://a.test", "http://b.test", "http://c.test", "http://a.test", "http://a.test"]);
  assert.deepEqual(got.errors.map((e) => e.retryIn), [9, 19, 39, 9], "10*2^n full jitter with random=0.999, capped at 40, reset after success");
  assert.ok(got.errors.every((e) => e.code === "network"));
});

test("401/403 with a token function: refresh and retry once; a second refusal stops", async () => {
  let n = 0;
  const tokenFn = () => Promise.resolve("t" + ++n);
  const f = fakeFetch([
    page([{ id: 1, data: 1 }], "ep:1"),
    apiError(403, "token_expired"),
    page([{ id: 2, data: 2 }], "ep:2"),
    apiError(403, "token_expired"),
    apiError(401, "token_missing"),
  ]);
  const { cb, got } = newClient({ fetch: f, token: tokenFn });
  cb.start();
  await until(() => cb.state === "disconnected" && f.calls.length === 5);
  assert.deepEqual(f.calls.map((c) => c.q.token), ["t1", "t1", "t2", "t2", "t3"]);
  assert.deepEqual(got.messages.map((m) => m.id), [1, 2]);
  assert.deepEqual(got.errors.map((e) => [e.code, e.fatal]), [["token_expired", false], ["token_expired", false], ["token_missing", true]]);
  assert.equal(got.states.at(-1), "disconnected");
  await sleep(50);
  assert.equal(f.calls.length, 5, "nothing after a fatal error");
});

test("403 with a string token stops at once", async () => {
  const f = fakeFetch([apiError(403, "token_invalid")]);
  const { cb, got } = newClient({ fetch: f, token: "abc" });
  cb.start();
  await until(() => cb.state === "disconnected");
  assert.equal(f.calls[0].q.token, "abc");
  assert.equal(got.errors[0].code, "token_invalid");
  assert.equal(got.errors[0].fatal, true);
});

test("a token function that fails is retried after a backoff", async () => {
  let n = 0;
  const f = fakeFetch([page([], "ep:0")]);
  const { cb, got } = newClient({ fetch: f, token: () => (++n === 1 ? Promise.reject(new Error("backend down")) : "ok") });
  cb.start();
  await until(() => f.calls.length >= 1);
  cb.stop();
  assert.equal(got.errors[0].code, "token_error");
  assert.equal(f.calls[0].q.token, "ok");
});

test("400 invalid_client is fatal; invalid_cursor forgets the cursor", async () => {
  const store = memoryStorage();
  store.setItem("cometbox:http://a.test|alice", "ep:5");
  const f = fakeFetch([apiError(400, "invalid_cursor"), apiError(400, "invalid_client")]);
  const { cb, got } = newClient({ fetch: f, sessionStorage: store });
  cb.start();
  await until(() => cb.state === "disconnected");
  assert.equal(f.calls[0].q.since, "ep:5");
  assert.equal(f.calls[1].q.since, undefined);
  assert.deepEqual(got.errors.map((e) => [e.code, e.fatal]), [["invalid_cursor", false], ["invalid_client", true]]);
});

test("a poll that outlives the node's timeout plus margin is aborted and retried", async () => {
  const f = fakeFetch([undefined, page([{ id: 1, data: 1 }], "ep:1")]);
  const { cb, got } = newClient({ fetch: f, pollTimeout: 60, timeoutMargin: 40 });
  cb.start();
  await until(() => got.messages.length === 1);
  cb.stop();
  assert.equal(f.calls[0].init.signal.aborted, true);
  assert.ok(f.calls[1].at - f.calls[0].at >= 95);
  assert.equal(got.errors[0].code, "timeout");
});

test("probe: a cold long-poll is preceded by POST /ack, which reports a refusal at once", async () => {
  let n = 0;
  const f = fakeFetch([
    () => new Response(null, { status: 204 }),
    page([{ id: 1, data: 1 }], "ep:1"),
    netError(),
    apiError(403, "token_expired"),
    () => new Response(null, { status: 204 }),
    page([], "ep:1"),
  ]);
  const { cb, got } = newClient({ fetch: f, probe: true, token: () => "t" + ++n, url: ["http://a.test", "http://b.test"] });
  cb.start();
  await until(() => f.calls.length >= 7);
  cb.stop();
  assert.deepEqual(f.calls.slice(0, 7).map((c) => [c.origin.slice(7, 8), c.path, c.init.method, c.q.token]), [
    ["a", "/ack", "POST", "t1"], // cold: probe
    ["a", "/poll", "GET", "t1"],
    ["a", "/poll", "GET", "t1"], // warm: no probe; this one fails
    ["b", "/ack", "POST", "t1"], // cold again, on b: refused
    ["b", "/ack", "POST", "t2"], // new token
    ["b", "/poll", "GET", "t2"], // an empty answer at once: a draining node
    ["a", "/ack", "POST", "t2"], // so on to a, cold
  ]);
  assert.equal(f.calls[0].init.body, undefined);
  assert.equal(f.calls[0].init.headers, undefined, "no custom headers: no preflight");
  assert.equal(f.calls[0].q.since, undefined);
  assert.equal(f.calls[4].q.since, "ep:1", "the probe acknowledges only what the page has");
  assert.deepEqual(got.errors.map((e) => e.code), ["network", "token_expired"]);
  assert.deepEqual(got.messages.map((m) => m.id), [1]);
});

test("probe: a node without /ack (404) is polled all the same; a held poll shows connected after a second", async () => {
  const f = fakeFetch([apiError(404, "not_found")]);
  const { cb, got } = newClient({ fetch: f, probe: true });
  cb.start();
  await until(() => f.calls.length === 2);
  assert.equal(f.calls[1].path, "/poll");
  assert.equal(cb.state, "connecting");
  await until(() => cb.state === "connected", 2000);
  cb.stop();
  assert.deepEqual(got.errors, []);
});

test("an empty answer at once (a draining node) moves to the next node with a backoff", async () => {
  const f = fakeFetch([page([], "ep:0"), page([], "ep:0")]);
  const { cb } = newClient({ fetch: f, url: ["http://a.test", "http://b.test"] });
  cb.start();
  await until(() => f.calls.length >= 2);
  cb.stop();
  assert.equal(f.calls[1].origin, "http://b.test");
});

test("a non-JSON 200 (a proxy's page) is an error and a retry elsewhere", async () => {
  const f = fakeFetch([() => new Response("<html>", { status: 200 }), page([], "ep:0")]);
  const { cb, got } = newClient({ fetch: f, url: ["http://a.test", "http://b.test"] });
  cb.start();
  await until(() => f.calls.length >= 2);
  cb.stop();
  assert.equal(got.errors[0].code, "bad_response");
  assert.equal(f.calls[1].origin, "http://b.test");
});

test("stop() aborts the request in flight and nothing follows; start() again resumes", async () => {
  const f = fakeFetch([]);
  const { cb, got } = newClient({ fetch: f });
  cb.start();
  await until(() => f.calls.length === 1);
  cb.stop();
  assert.equal(f.calls[0].init.signal.aborted, true);
  await sleep(60);
  assert.equal(f.calls.length, 1);
  assert.equal(got.errors.length, 0, "stopping is not an error");
  cb.start();
  await until(() => f.calls.length === 2);
  cb.stop();
  assert.deepEqual(got.states, ["connecting", "disconnected", "connecting", "disconnected"]);
});

test("an exception in onMessage does not break the loop", async () => {
  const f = fakeFetch([page([{ id: 1, data: 1 }, { id: 2, data: 2 }], "ep:2")]);
  const seen = [];
  const old = globalThis.reportError;
  const reported = [];
  globalThis.reportError = (e) => reported.push(e);
  try {
    const { cb } = newClient({ fetch: f, onMessage: (m) => { seen.push(m.id); throw new Error("app bug"); } });
    cb.start();
    await until(() => f.calls.length === 2);
    cb.stop();
  } finally {
    globalThis.reportError = old;
  }
  assert.deepEqual(seen, [1, 2]);
  assert.equal(reported.length, 2);
});

test("on(event) listeners work beside the option callbacks", async () => {
  const f = fakeFetch([page([{ id: 1, data: 1 }], "ep:1")]);
  const { cb } = newClient({ fetch: f });
  const seen = [];
  const fn = (m) => seen.push(m.id);
  cb.on("message", fn).on("state", (s) => seen.push(s));
  cb.start();
  await until(() => f.calls.length === 2);
  cb.off("message", fn);
  cb.stop();
  assert.deepEqual(seen, ["connecting", "connected", 1, "disconnected"]);
});

// ---- browser events ---------------------------------------------------------

test("offline ends the poll and waits; online reconnects at once", async () => {
  const win = new FakeWindow();
  const f = fakeFetch([undefined, page([{ id: 1, data: 1 }], "ep:1")]);
  const { cb, got } = newClient({ fetch: f, window: win, maxDelay: 60000 });
  cb.start();
  await until(() => f.calls.length === 1);
  win.dispatchEvent(new Event("offline"));
  await sleep(100);
  assert.equal(f.calls[0].init.signal.aborted, true);
  assert.equal(f.calls.length, 1, "no request while offline");
  assert.equal(cb.state, "connecting");
  win.dispatchEvent(new Event("online"));
  await until(() => got.messages.length === 1, 500, "reconnect on online");
  cb.stop();
});

test("visibilitychange cuts a backoff short and replaces a poll that slept past its timeout", async (t) => {
  const win = new FakeWindow();
  const doc = new EventTarget();
  doc.visibilityState = "visible";
  const f = fakeFetch([netError(), page([], "ep:0")]);
  const { cb } = newClient({ fetch: f, window: win, document: doc, minDelay: 60000, maxDelay: 60000, random: () => 0.9 });
  t.after(() => cb.stop()); // also when an assertion fails: a client left running keeps the suite from ending
  cb.start();
  await until(() => f.calls.length === 1);
  await sleep(20);
  doc.dispatchEvent(new Event("visibilitychange"));
  await until(() => f.calls.length >= 2, 500, "the backoff is cut short");
  cb.stop();
  // A held poll older than its limit is aborted on return to the tab.
  const f2 = fakeFetch([undefined, page([], "ep:0")]);
  const c2 = newClient({ fetch: f2, window: win, document: doc, pollTimeout: 20000, timeoutMargin: 0 });
  t.after(() => c2.cb.stop());
  c2.cb.start();
  await until(() => f2.calls.length === 1);
  c2.cb._requestStarted -= 30000; // as if the tab slept through it
  doc.dispatchEvent(new Event("visibilitychange"));
  await until(() => f2.calls.length >= 2, 3000, "the stale poll replaced"); // its successor may poll again at once
  assert.equal(c2.got.errors[0].code, "timeout");
});

test("pagehide into the bfcache lets go of the connection; pageshow comes back", async () => {
  const win = new FakeWindow();
  const f = fakeFetch([]);
  const { cb } = newClient({ fetch: f, window: win });
  cb.start();
  await until(() => f.calls.length === 1);
  const hide = new Event("pagehide");
  hide.persisted = true;
  win.dispatchEvent(hide);
  assert.equal(f.calls[0].init.signal.aborted, true);
  assert.equal(cb.state, "disconnected");
  const show = new Event("pageshow");
  show.persisted = true;
  win.dispatchEvent(show);
  await until(() => f.calls.length === 2);
  assert.equal(cb.state, "connecting");
  cb.stop();
  win.dispatchEvent(show);
  await sleep(30);
  assert.equal(f.calls.length, 2, "a stopped client stays stopped on pageshow");
});

// ---- SSE ------------------------------------------------------------------------

function sseClient(opts) {
  FakeES.instances = [];
  return newClient(Object.assign({ transport: "auto", EventSource: FakeES, ackInterval: 20, helloTimeout: 200 }, opts));
}

test("SSE: hello, messages with cursors as event ids, gap, ping, background acks", async () => {
  const f = fakeFetch([() => new Response(null, { status: 204 }), () => new Response(null, { status: 204 })]);
  const order = [];
  const { cb, got } = sseClient({ fetch: f, token: "tk", onGap: (g) => order.push(g) });
  cb.on("message", (m) => order.push(m.id));
  cb.start();
  await until(() => FakeES.instances.length === 1);
  const es = FakeES.instances[0];
  const u = new URL(es.url);
  assert.equal(u.pathname, "/stream");
  assert.equal(u.searchParams.get("client"), "alice");
  assert.equal(u.searchParams.get("token"), "tk");
  assert.equal(cb.transport, "sse");
  es.emit("hello", { cursor: "ep:4", heartbeat: 15 });
  assert.equal(cb.state, "connected");
  assert.equal(cb.cursor, "ep:4", "a fresh page starts where the stream starts");
  es.emit("message", { id: 5, data: "five" }, "ep:5");
  es.emit("message", { id: 5, data: "five" }, "ep:5");
  es.emit("gap", { first: 6, last: 7 });
  es.emit("message", { id: 8, data: "eight" }, "ep:8");
  es.emit("ping", {});
  assert.deepEqual(order, [5, { first: 6, last: 7 }, 8]);
  await until(() => f.calls.length === 1);
  assert.equal(f.calls[0].path, "/ack");
  assert.equal(f.calls[0].init.method, "POST");
  assert.equal(f.calls[0].init.headers, undefined, "no custom headers: no preflight");
  assert.equal(f.calls[0].init.body, undefined);
  assert.equal(f.calls[0].q.since, "ep:8");
  assert.equal(f.calls[0].q.token, "tk");
  es.emit("message", { id: 9, data: 9 }, "ep:9");
  await until(() => f.calls.length === 2);
  assert.equal(f.calls[1].q.since, "ep:9");
  assert.deepEqual(got.messages.map((m) => m.id), [5, 8, 9]);
  cb.stop();
  assert.equal(es.closed, true);
});

test("SSE: a reset event switches epochs and tells the application", async () => {
  const store = memoryStorage();
  store.setItem("cometbox:http://a.test|alice", "old:30");
  const f = fakeFetch([]);
  const order = [];
  const { cb } = sseClient({ fetch: f, sessionStorage: store, onReset: () => order.push("reset"), onMessage: (m) => order.push(m.id) });
  cb.start();
  await until(() => FakeES.instances.length === 1);
  const es = FakeES.instances[0];
  assert.equal(new URL(es.url).searchParams.get("since"), "old:30");
  es.emit("hello", { cursor: "new:0", heartbeat: 15 });
  es.emit("reset", { cursor: "new:0" }, "new:0");
  es.emit("message", { id: 1, data: 1 }, "new:1");
  es.emit("message", { id: 2, data: 2 }, "new:2");
  assert.deepEqual(order, ["reset", 1, 2]);
  assert.equal(cb.cursor, "new:2");
  cb.stop();
});

test("SSE: a message in a new epoch without a reset event continues the sequence", async () => {
  const store = memoryStorage();
  store.setItem("cometbox:http://a.test|alice", "old:30");
  const f = fakeFetch([]);
  const order = [];
  const { cb } = sseClient({ fetch: f, sessionStorage: store, onReset: () => order.push("reset"), onMessage: (m) => order.push(m.id) });
  cb.start();
  await until(() => FakeES.instances.length === 1);
  const es = FakeES.instances[0];
  es.emit("hello", { cursor: "old:30", heartbeat: 15 });
  es.emit("message", { id: 30, data: 30 }, "new:30"); // already had
  es.emit("message", { id: 31, data: 31 }, "new:31");
  assert.deepEqual(order, [31]);
  assert.equal(cb.cursor, "new:31");
  cb.stop();
});

test("SSE: no hello in time (a buffering proxy): long-poll from then on (auto)", async () => {
  const f = fakeFetch([page([{ id: 1, data: 1 }], "ep:1"), page([], "ep:1")]);
  const { cb, got } = sseClient({ fetch: f, helloTimeout: 50 });
  cb.start();
  await until(() => f.calls.length >= 2);
  cb.stop();
  assert.equal(FakeES.instances.length, 1);
  assert.equal(FakeES.instances[0].closed, true);
  assert.equal(got.errors[0].code, "sse_buffered");
  assert.equal(f.calls[0].path, "/poll");
  assert.equal(cb._sseDisabled, true);
});

test("SSE: an error before hello polls once to learn why (token refresh), then streams again", async () => {
  let n = 0;
  const f = fakeFetch([apiError(403, "token_expired"), page([{ id: 1, data: 1 }], "ep:1")]);
  const { cb, got } = sseClient({ fetch: f, token: () => "t" + ++n });
  cb.start();
  await until(() => FakeES.instances.length === 1);
  FakeES.instances[0].fail();
  await until(() => FakeES.instances.length === 2);
  assert.deepEqual(f.calls.map((c) => [c.path, c.q.token]), [["/poll", "t1"], ["/poll", "t2"]]);
  const es = FakeES.instances[1];
  const u = new URL(es.url);
  assert.equal(u.searchParams.get("token"), "t2");
  assert.equal(u.searchParams.get("since"), "ep:1");
  es.emit("hello", { cursor: "ep:1", heartbeat: 15 });
  assert.equal(cb.state, "connected");
  assert.deepEqual(got.errors.map((e) => e.code), ["stream_error", "token_expired"]);
  cb.stop();
});

test("SSE: three streams failing while polls work: long-poll for good (auto)", async () => {
  const f = fakeFetch([page([], "ep:0"), page([], "ep:0"), page([], "ep:0"), page([], "ep:0")]);
  const { cb } = sseClient({ fetch: f, pollTimeout: 1 });
  cb.start();
  for (let i = 1; i <= 3; i++) {
    await until(() => FakeES.instances.length === i);
    FakeES.instances[i - 1].fail();
    await until(() => f.calls.length >= i);
  }
  await until(() => f.calls.length >= 5);
  await sleep(30);
  cb.stop();
  assert.equal(FakeES.instances.length, 3, "no fourth stream");
});

test("SSE: silence past heartbeat plus margin reconnects; a stream closed by the node reconnects", async () => {
  const f = fakeFetch([page([], "ep:0")]);
  const { cb, got } = sseClient({ fetch: f, timeoutMargin: 50, url: ["http://a.test", "http://b.test"] });
  cb.start();
  await until(() => FakeES.instances.length === 1);
  FakeES.instances[0].emit("hello", { cursor: "ep:0", heartbeat: 0.05 });
  await until(() => got.errors.length === 1, 1000);
  assert.equal(got.errors[0].code, "sse_stalled");
  assert.equal(FakeES.instances[0].closed, true);
  // It long-polls once (on the other node), then streams again.
  await until(() => FakeES.instances.length === 2);
  assert.equal(f.calls[0].origin, "http://b.test");
  const es = FakeES.instances[1];
  es.emit("hello", { cursor: "ep:0", heartbeat: 15 });
  es.emit("message", { id: 1, data: 1 }, "ep:1");
  es.fail(); // the node closed the stream (drain): reconnect, with the cursor
  await until(() => FakeES.instances.length === 3);
  assert.equal(new URL(FakeES.instances[2].url).searchParams.get("since"), "ep:1");
  cb.stop();
});

test("transport longpoll never streams; auto without EventSource long-polls", async () => {
  const f = fakeFetch([]);
  FakeES.instances = [];
  const { cb } = newClient({ fetch: f, transport: "longpoll", EventSource: FakeES });
  cb.start();
  await until(() => f.calls.length === 1);
  cb.stop();
  assert.equal(FakeES.instances.length, 0);
  const f2 = fakeFetch([]);
  const c2 = newClient({ fetch: f2, transport: "auto", EventSource: null });
  c2.cb.start();
  await until(() => f2.calls.length === 1);
  c2.cb.stop();
});

// ---- shared mode -----------------------------------------------------------------

// fakeLocks is an in-process Web Locks: exclusive, granted in request order.
function fakeLocks() {
  const held = new Map();
  return {
    request(name, opts, fn) {
      return new Promise((resolve, reject) => {
        const entry = { fn, resolve, reject };
        const q = held.get(name) || [];
        held.set(name, q);
        const grant = () => {
          Promise.resolve(entry.fn({ name })).then(() => {
            q.shift();
            resolve();
            if (q.length) q[0].grant();
          });
        };
        entry.grant = grant;
        if (opts && opts.signal) {
          opts.signal.addEventListener("abort", () => {
            const i = q.indexOf(entry);
            if (i > 0) {
              q.splice(i, 1);
              reject(new Error("AbortError"));
            }
          });
        }
        q.push(entry);
        if (q.length === 1) grant();
      });
    },
  };
}

// fakeNode simulates one node's queue for client alice: a poll with
// since=E:N answers the messages above N at once or holds until publish().
// As a real node, it has no epoch before the first message (cursor "0").
function fakeNode() {
  const msgs = [];
  const waiting = [];
  let polls = 0;
  const answer = (since) => {
    const n = since ? Number(since.split(":")[1]) : 0;
    const out = msgs.filter((m) => m.id > n);
    const last = out.length ? out[out.length - 1].id : n;
    return new Response(JSON.stringify(out), { status: 200, headers: { "Cometbox-Cursor": msgs.length ? "ep:" + last : "0" } });
  };
  const fetch = (url, init) => {
    polls++;
    const since = new URL(url).searchParams.get("since");
    return new Promise((resolve, reject) => {
      const w = { since, resolve };
      init.signal.addEventListener("abort", () => {
        const i = waiting.indexOf(w);
        if (i >= 0) waiting.splice(i, 1);
        reject(new Error("aborted"));
      });
      const n = since ? Number(since.split(":")[1]) : 0;
      if (msgs.some((m) => m.id > n)) resolve(answer(since));
      else waiting.push(w);
    });
  };
  return {
    fetch,
    get polls() { return polls; },
    get held() { return waiting.length; },
    publish(data) {
      msgs.push({ id: msgs.length + 1, data });
      for (const w of waiting.splice(0)) w.resolve(answer(w.since));
    },
  };
}

function tab(node, locks, local, opts) {
  return newClient(Object.assign({
    fetch: node.fetch,
    shared: true,
    locks,
    localStorage: local,
    sessionStorage: memoryStorage(),
    BroadcastChannel: globalThis.BroadcastChannel,
    client: "alice-" + test.name,
  }, opts));
}

for (const mode of ["locks", "lease"]) {
  test(`shared mode (${mode}): one tab holds the poll for all, relays, hands over without loss or repeat`, async () => {
    const node = fakeNode();
    const local = memoryStorage();
    const locks = mode === "locks" ? fakeLocks() : null;
    const client = "alice-" + mode;
    const a = tab(node, locks, local, { client });
    const b = tab(node, locks, local, { client });
    const c = tab(node, locks, local, { client });
    a.cb.start();
    await until(() => a.cb.role === "leader" && node.held === 1, 3000, "a leads");
    b.cb.start();
    c.cb.start();
    await sleep(mode === "lease" ? 1200 : 50);
    assert.equal(b.cb.role, "follower");
    assert.equal(c.cb.role, "follower");
    assert.equal(node.held, 1, "one poll between three tabs");
    for (let i = 1; i <= 3; i++) node.publish("m" + i);
    await until(() => b.got.messages.length === 3 && c.got.messages.length === 3, 2000, "relayed");
    assert.deepEqual(a.got.messages.map((m) => m.data), ["m1", "m2", "m3"]);
    assert.deepEqual(b.got.messages.map((m) => m.data), ["m1", "m2", "m3"]);
    assert.equal(b.cb.state, "connected", "followers show the leader's state");
    assert.equal(b.cb.transport, "shared");
    // The leader goes away; one of the others takes over.
    a.cb.stop();
    node.publish("m4");
    await until(() => (b.cb.role === "leader" || c.cb.role === "leader") && node.held === 1, 6000, "takeover");
    node.publish("m5");
    await until(() => b.got.messages.length === 5 && c.got.messages.length === 5, 3000, "after takeover");
    assert.deepEqual(b.got.messages.map((m) => m.data), ["m1", "m2", "m3", "m4", "m5"]);
    assert.deepEqual(c.got.messages.map((m) => m.data), ["m1", "m2", "m3", "m4", "m5"]);
    const leader = b.cb.role === "leader" ? b : c;
    const follower = leader === b ? c : b;
    assert.equal(follower.cb.role, "follower");
    // A tab that joins late (a reload) gets what it missed from the leader.
    const saved = follower.cb.options.sessionStorage;
    follower.cb.stop();
    node.publish("m6");
    await until(() => leader.got.messages.length === 6);
    const d = tab(node, locks, local, { client, sessionStorage: saved });
    d.cb.start();
    await until(() => d.got.messages.length === 1, 2000, "catch-up");
    assert.deepEqual(d.got.messages.map((m) => m.data), ["m6"]);
    leader.cb.stop();
    d.cb.stop();
  });
}

// A follower tab in the back/forward cache (WebKit keeps pages there with
// their state) misses what the leader relays meanwhile; back, it must get
// it from the leader, also when it had no message yet (so no epoch: the
// node has none before the first message), and also when the leader
// relays a new message before answering the returning tab.
for (const mode of ["locks", "lease"]) {
  test(`shared mode (${mode}): a follower back from the back/forward cache gets what it missed, in order, once`, async (t) => {
    const node = fakeNode();
    const local = memoryStorage();
    const locks = mode === "locks" ? fakeLocks() : null;
    const client = "alice-bfcache-" + mode;
    const a = tab(node, locks, local, { client });
    const win = new FakeWindow();
    const b = tab(node, locks, local, { client, window: win });
    t.after(() => { a.cb.stop(); b.cb.stop(); });
    a.cb.start();
    await until(() => a.cb.role === "leader" && node.held === 1, 3000, "a leads");
    b.cb.start();
    await until(() => b.cb.role === "follower" && b.cb.state === "connected", 3000, "b follows");
    const hide = new Event("pagehide");
    hide.persisted = true;
    win.dispatchEvent(hide);
    assert.equal(b.cb.role, null, "b left the tabs");
    node.publish("m1");
    node.publish("m2");
    await until(() => a.got.messages.length === 2, 2000, "a has m1, m2");
    const show = new Event("pageshow");
    show.persisted = true;
    win.dispatchEvent(show);
    node.publish("m3"); // relayed by a while b's hello is on its way
    await until(() => a.got.messages.length === 3 && b.got.messages.length >= 3, 3000, "b caught up");
    await sleep(100);
    assert.deepEqual(b.got.messages.map((m) => m.data), ["m1", "m2", "m3"]);
    assert.deepEqual(b.got.gaps, []);
    assert.equal(b.cb.role, "follower");
  });
}

test("shared mode: a returning follower whose missed messages left the leader's history is told of the gap", async (t) => {
  const node = fakeNode();
  const local = memoryStorage();
  const locks = fakeLocks();
  const client = "alice-ring";
  const a = tab(node, locks, local, { client });
  const win = new FakeWindow();
  const b = tab(node, locks, local, { client, window: win });
  t.after(() => { a.cb.stop(); b.cb.stop(); });
  a.cb.start();
  await until(() => a.cb.role === "leader" && node.held === 1, 3000, "a leads");
  b.cb.start();
  await until(() => b.cb.role === "follower" && b.cb.state === "connected", 3000, "b follows");
  node.publish("m1");
  await until(() => b.got.messages.length === 1, 2000, "m1 in b");
  const hide = new Event("pagehide");
  hide.persisted = true;
  win.dispatchEvent(hide);
  for (let i = 2; i <= 300; i++) node.publish("m" + i);
  await until(() => a.got.messages.length === 300, 3000, "a has 300");
  const show = new Event("pageshow");
  show.persisted = true;
  win.dispatchEvent(show);
  await until(() => b.got.messages.length > 1, 3000, "b caught up");
  await sleep(100);
  // The leader keeps the last 256: 45..300. 2..44 are gone for b.
  assert.deepEqual(b.got.gaps, [{ first: 2, last: 44 }]);
  const ids = b.got.messages.map((m) => m.id);
  assert.deepEqual(ids, [1].concat(Array.from({ length: 256 }, (_, i) => 45 + i)));
});

test("shared mode: a follower that reloads before the client's first message still gets it", async (t) => {
  const node = fakeNode();
  const local = memoryStorage();
  const locks = fakeLocks();
  const client = "alice-reload0";
  const a = tab(node, locks, local, { client });
  const session = memoryStorage();
  const b = tab(node, locks, local, { client, sessionStorage: session });
  const tabs = [a, b];
  t.after(() => { for (const x of tabs) x.cb.stop(); });
  a.cb.start();
  await until(() => a.cb.role === "leader" && node.held === 1, 3000, "a leads");
  b.cb.start();
  await until(() => b.cb.role === "follower" && b.cb.state === "connected", 3000, "b follows");
  b.cb.stop(); // the page unloads
  node.publish("m1");
  await until(() => a.got.messages.length === 1, 2000, "a has m1");
  const b2 = tab(node, locks, local, { client, sessionStorage: session }); // the reloaded page
  tabs.push(b2);
  b2.cb.start();
  await until(() => b2.got.messages.length === 1, 3000, "m1 in the reloaded page");
  assert.deepEqual(b2.got.messages.map((m) => m.data), ["m1"]);
  // A page opened later (a new tab) starts where the tabs are.
  const c = tab(node, locks, local, { client });
  tabs.push(c);
  c.cb.start();
  await until(() => c.cb.state === "connected", 3000, "c follows");
  await sleep(100);
  assert.deepEqual(c.got.messages, []);
});

test("a group message's copy keeps its group, in this tab and in the shared mode's relays", async () => {
  const f = fakeFetch([page([{ id: 1, data: "direct" }, { id: 2, group: "room:42", data: { x: 1 } }], "ep:2")]);
  const { cb, got } = newClient({ fetch: f });
  const posted = [];
  cb.role = "leader";
  cb._post = (m) => posted.push(m);
  cb.start();
  await until(() => got.messages.length === 2);
  assert.deepEqual(got.messages, [{ id: 1, data: "direct" }, { id: 2, group: "room:42", data: { x: 1 } }]);
  assert.deepEqual(posted.filter((m) => m.t === "msg").map((m) => m.group), [undefined, "room:42"]);
  cb.stop();

  // A follower tab delivers the relay with its group.
  const follower = newClient({ fetch: fakeFetch([]) });
  follower.cb._onShared({ t: "msg", from: "other", epoch: "ep", id: 5, data: "hi", group: "g" });
  assert.deepEqual(follower.got.messages, [{ id: 5, data: "hi", group: "g" }]);
});
