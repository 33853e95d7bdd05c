/*!
 * cometbox.js 0.1.0: the browser client of cometbox, a comet
 * (server-to-browser push) tier. One hand-written file, no dependencies,
 * no build step. https://github.com/cometbox/cometbox
 * Copyright (c) 2026 The cometbox authors. @license MIT (see LICENSE)
 *
 *   <script src="https://push.example.com/cometbox.js"></script>
 *   var cb = new Cometbox({
 *     url: ["https://push1.example.com", "https://push2.example.com"],
 *     client: "alice",
 *     token: function () { return fetch("/cometbox-token").then(function (r) { return r.text(); }); },
 *     onMessage: function (msg) { console.log(msg.id, msg.data); },
 *     onStateChange: function (state) { console.log(state); }
 *   });
 *   cb.start();
 *
 * As an ES module: import { Cometbox } from "/cometbox.mjs".
 * The whole API, its options, events and states: web/README.md.
 * The HTTP contract it speaks: docs/protocol.md.
 */

;(function (global, moduleName, factory) { // eslint-disable-line
  "use strict";
  /* eslint-disable no-undef */
  var newModule = factory(global);
  if (typeof module === "object" && module != null && module.exports) {
    module.exports = newModule;
  } else if (typeof define === "function" && define.amd) {
    define(function () { return newModule; });
  } else {
    global[moduleName] = newModule;
  }
  /* eslint-enable no-undef */
})(typeof globalThis !== "undefined" ? globalThis : typeof window !== "undefined" ? window : this, "Cometbox", function factory(global) {
  "use strict";

  var VERSION = "0.1.0";

  // The defaults; new Cometbox(options) merges a partial options object over
  // them. Environment members (fetch, EventSource, window, ...) default to
  // the browser's own and are there to be replaced in tests.
  var DEFAULTS = {
    url: "",                 // one node URL, or an array of them (failover in order)
    client: "",              // the client id the back end publishes to
    token: null,             // a string, or a function returning (a promise of) a string
    transport: "auto",       // "auto" (SSE where EventSource exists), "sse", "longpoll"
    shared: false,           // tabs of one client share one connection
    resume: true,            // keep the cursor in sessionStorage so a reload resumes
    pollTimeout: 25000,      // the node's -poll-timeout, in ms
    timeoutMargin: 10000,    // a poll (or a silent stream) outliving pollTimeout (heartbeat) by this is aborted
    minDelay: 500,           // backoff: base delay, ms
    maxDelay: 20000,         // backoff: cap, ms
    maxRetryAfter: 300000,   // the most of a Retry-After that is honoured, ms
    helloTimeout: 5000,      // SSE: no hello within this, the stream is buffered: long-poll instead
    ackInterval: 1000,       // SSE: acknowledge at most this often, ms
    probe: true,             // long-poll: a quick POST /ack first after start() or a failure
    onMessage: null,
    onError: null,
    onStateChange: null,
    onGap: null,
    onReset: null,
    // Environment, injectable for tests.
    fetch: undefined,
    EventSource: undefined,
    window: undefined,
    document: undefined,
    sessionStorage: undefined,
    localStorage: undefined,
    locks: undefined,
    BroadcastChannel: undefined,
    random: undefined
  };

  var STATES = { disconnected: true, connecting: true, connected: true };

  // ---- pure helpers (exported as Cometbox.util, unit-tested) --------------

  // parseCursor("k3x9q2ab:57") -> {epoch: "k3x9q2ab", id: 57};
  // parseCursor("57") -> {epoch: "", id: 57}; "" or null -> {epoch: "", id: 0};
  // anything else -> null.
  function parseCursor(s) {
    if (s === undefined || s === null || s === "") {
      return { epoch: "", id: 0 };
    }
    var m = /^(?:([a-z0-9]{1,64}):)?([0-9]{1,16})$/.exec(String(s));
    if (!m) {
      return null;
    }
    var id = parseInt(m[2], 10);
    if (!isFinite(id) || id > 9007199254740991) {
      return null;
    }
    return { epoch: m[1] || "", id: id };
  }

  function formatCursor(c) {
    if (!c || (!c.epoch && !c.id)) {
      return "";
    }
    return c.epoch ? c.epoch + ":" + c.id : String(c.id);
  }

  // compareCursor(a, b): negative, 0 or positive when both are in one epoch
  // (or either has none); NaN when their epochs differ, for they cannot be
  // compared then.
  function compareCursor(a, b) {
    a = typeof a === "string" ? parseCursor(a) : a;
    b = typeof b === "string" ? parseCursor(b) : b;
    if (!a || !b) {
      return NaN;
    }
    if (a.epoch && b.epoch && a.epoch !== b.epoch) {
      return NaN;
    }
    return a.id - b.id;
  }

  // parseGap("58-60") -> {first: 58, last: 60}, or null.
  function parseGap(s) {
    var m = /^\s*([0-9]{1,16})\s*-\s*([0-9]{1,16})\s*$/.exec(s || "");
    if (!m) {
      return null;
    }
    return { first: parseInt(m[1], 10), last: parseInt(m[2], 10) };
  }

  // parseRetryAfter("3") -> 3000; an HTTP date -> ms from now (>= 0);
  // anything else -> null.
  function parseRetryAfter(value, now) {
    if (value === null || value === undefined) {
      return null;
    }
    var s = String(value).trim();
    if (/^[0-9]{1,9}$/.test(s)) {
      return parseInt(s, 10) * 1000;
    }
    var t = /[A-Za-z]/.test(s) ? Date.parse(s) : NaN;
    if (isNaN(t)) {
      return null;
    }
    return Math.max(0, t - (now === undefined ? Date.now() : now));
  }

  // Full-jitter exponential backoff: a random delay in [0, min(cap,
  // base * 2^attempt)). attempt counts failures since the last success.
  function backoff(attempt, base, cap, random) {
    var r = (random || Math.random)();
    var ceiling = Math.min(cap, base * Math.pow(2, Math.min(Math.max(attempt, 0), 31)));
    return Math.floor(r * ceiling);
  }

  // Deduplication within an epoch: a message is new when its id is above
  // the last one delivered; isNewMessage is the rule the client applies.
  function isNewMessage(cursor, epoch, id) {
    if (cursor.epoch && epoch && cursor.epoch !== epoch) {
      return true; // another sequence; the caller resets first
    }
    return id > cursor.id;
  }

  function normalizeURL(u) {
    u = String(u === undefined || u === null ? "" : u);
    return u.replace(/\/+$/, "");
  }

  function extend(a, b) {
    for (var k in b) {
      if (Object.prototype.hasOwnProperty.call(b, k) && b[k] !== undefined) {
        a[k] = b[k];
      }
    }
    return a;
  }

  function isFunction(f) {
    return typeof f === "function";
  }

  function randomId(random) {
    return (random() * 1e16).toString(36) + "-" + Date.now().toString(36);
  }

  // reportLater rethrows an exception thrown by an application callback
  // without breaking the client's own loop.
  function reportLater(e) {
    if (typeof global.reportError === "function") {
      try {
        global.reportError(e);
        return;
      } catch (_) { /* fall through */ }
    }
    setTimeout(function () { throw e; }, 0);
  }

  // ---- errors ---------------------------------------------------------------

  // CometboxError is what onError receives: message, code (the node's
  // stable code, or one of the client's: network, timeout, bad_response,
  // stream_error, sse_buffered, sse_stalled, token_error), status (the HTTP
  // status, 0 without one), url, fatal (true when the client stopped because
  // of it) and retryIn (ms until the next attempt, when there is one).
  function CometboxError(message, fields) {
    var e = new Error(message);
    Object.setPrototypeOf(e, CometboxError.prototype);
    e.name = "CometboxError";
    e.code = "error";
    e.status = 0;
    e.url = "";
    e.fatal = false;
    extend(e, fields || {});
    return e;
  }
  CometboxError.prototype = Object.create(Error.prototype, {
    constructor: { value: CometboxError, writable: true, configurable: true }
  });

  // ---- a tiny bus for shared mode: BroadcastChannel, else localStorage -----

  function Bus(name, BC, storage, win) {
    var self = this;
    this.onmessage = null;
    this._closed = false;
    if (BC) {
      this._bc = new BC(name);
      this._bc.onmessage = function (ev) {
        if (!self._closed && self.onmessage) {
          self.onmessage(ev.data);
        }
      };
    } else if (storage && win && win.addEventListener) {
      this._key = name + ":bus";
      this._storage = storage;
      this._win = win;
      this._onStorage = function (ev) {
        if (self._closed || ev.key !== self._key || !ev.newValue) {
          return;
        }
        var m;
        try {
          m = JSON.parse(ev.newValue).m;
        } catch (_) {
          return;
        }
        if (self.onmessage) {
          self.onmessage(m);
        }
      };
      win.addEventListener("storage", this._onStorage);
    }
  }
  Bus.prototype.post = function (m) {
    if (this._closed) {
      return;
    }
    if (this._bc) {
      try {
        this._bc.postMessage(m);
      } catch (_) { /* closed */ }
    } else if (this._storage) {
      try {
        this._storage.setItem(this._key, JSON.stringify({ m: m, n: Math.random() }));
      } catch (_) { /* quota, private mode */ }
    }
  };
  Bus.prototype.close = function () {
    this._closed = true;
    if (this._bc) {
      try {
        this._bc.close();
      } catch (_) { /* already */ }
    }
    if (this._onStorage) {
      this._win.removeEventListener("storage", this._onStorage);
    }
  };

  // ---- the client -------------------------------------------------------------

  var RING = 256;          // messages a tab keeps to resend to a tab that joins late
  var LEASE_MS = 3500;     // shared mode without Web Locks: a leader's lease
  var LEASE_TICK = 1000;
  var FAST_EMPTY_MS = 1000; // an empty poll answer quicker than this is a draining node
  var STREAM_STABLE_MS = 3000;
  var HELD_MS = 1000;      // a long-poll open this long is held by a node: "connected"

  function Cometbox(options) {
    if (!(this instanceof Cometbox)) {
      throw new TypeError("use new Cometbox(options)");
    }
    var o = extend(extend({}, DEFAULTS), options || {});
    var urls = Array.isArray(o.url) ? o.url.slice() : [o.url];
    if (!urls.length) {
      urls = [""];
    }
    this.urls = urls.map(normalizeURL);
    if (!o.client || typeof o.client !== "string") {
      throw new TypeError("Cometbox: option client is required");
    }
    if (o.transport !== "auto" && o.transport !== "sse" && o.transport !== "longpoll") {
      throw new TypeError("Cometbox: transport must be auto, sse or longpoll");
    }
    this.options = o;
    this.client = o.client;
    this.state = "disconnected";
    this.transport = null;   // "sse", "longpoll", or "shared" (a follower tab)
    this.role = null;        // shared mode: "leader" or "follower"
    this.url = this.urls[0];

    var win = o.window !== undefined ? o.window : (typeof window !== "undefined" ? window : null);
    this._win = win;
    this._doc = o.document !== undefined ? o.document : (win && win.document) || null;
    this._random = o.random || Math.random;
    var f = o.fetch || (isFunction(global.fetch) ? global.fetch.bind(global) : null);
    this._fetch = f;
    this._ES = o.EventSource !== undefined ? o.EventSource : (global.EventSource || null);
    this._session = o.sessionStorage !== undefined ? o.sessionStorage : storageOf(win, "sessionStorage");
    this._local = o.localStorage !== undefined ? o.localStorage : storageOf(win, "localStorage");
    var nav = win && win.navigator ? win.navigator : (typeof navigator !== "undefined" ? navigator : null);
    this._locks = o.locks !== undefined ? o.locks : (nav && nav.locks) || null;
    this._BC = o.BroadcastChannel !== undefined ? o.BroadcastChannel : (global.BroadcastChannel || null);
    this._offline = !!(nav && nav.onLine === false);

    this._key = "cometbox:" + this.urls.join(" ") + "|" + this.client;
    this._listeners = {};
    this._gen = 0;
    this._urlIndex = 0;
    this._notBefore = {};    // url -> time before which a node asked not to be asked again
    this._attempt = 0;
    this._ring = [];
    this._tabId = randomId(this._random);
    this._token = typeof o.token === "string" ? o.token : null;
    this._tokenStale = false;
    this._authRetried = false;
    this._sseFailures = 0;
    this._sseSuspect = false;
    this._sseDisabled = false;
    this._ackTimer = null;
    this._warm = null;       // the URL whose last poll (or probe) succeeded
    this._ackedCursor = "";
    this._ackAbort = null;
    this._frozen = false;
    this._running = false;

    this._cursor = { epoch: "", id: 0 };
    var saved = o.resume ? storageGet(this._session, this._key) : null;
    var c = parseCursor(saved);
    if (saved && c) {
      this._cursor = c;
    }
    // Shared mode: whether this page was among the tabs before (it
    // reloaded, even before any message: its cursor may be ""), so that it
    // asks for what it missed rather than start where the tabs are.
    this._back = saved !== null;
    this._held = null;       // relays held back until the leader's sync

    var self = this;
    this._handlers = {
      online: function () { self._onOnline(); },
      offline: function () { self._onOffline(); },
      visibilitychange: function () { self._onVisibility(); },
      pagehide: function (ev) { self._onPageHide(ev); },
      pageshow: function (ev) { self._onPageShow(ev); }
    };
  }

  function storageOf(win, name) {
    try {
      return (win && win[name]) || null;
    } catch (_) {
      return null; // SecurityError: storage disabled
    }
  }
  function storageGet(s, k) {
    try {
      return s ? s.getItem(k) : null;
    } catch (_) {
      return null;
    }
  }
  function storageSet(s, k, v) {
    try {
      if (s) {
        s.setItem(k, v);
      }
    } catch (_) { /* quota or private browsing */ }
  }
  function storageRemove(s, k) {
    try {
      if (s) {
        s.removeItem(k);
      }
    } catch (_) { /* ignore */ }
  }

  Cometbox.VERSION = VERSION;
  // So that require("./cometbox.js").Cometbox and a default import work
  // as well as the global.
  Cometbox.Cometbox = Cometbox;
  Cometbox["default"] = Cometbox;
  Cometbox.CometboxError = CometboxError;
  Cometbox.defaults = DEFAULTS;
  Cometbox.util = {
    parseCursor: parseCursor,
    formatCursor: formatCursor,
    compareCursor: compareCursor,
    parseGap: parseGap,
    parseRetryAfter: parseRetryAfter,
    backoff: backoff,
    isNewMessage: isNewMessage
  };

  var P = Cometbox.prototype;

  // ---- events -----------------------------------------------------------------

  // on(event, fn): "message", "error", "state", "gap", "reset", "role".
  P.on = function (event, fn) {
    (this._listeners[event] = this._listeners[event] || []).push(fn);
    return this;
  };
  P.off = function (event, fn) {
    var l = this._listeners[event];
    if (!l) {
      return this;
    }
    if (!fn) {
      delete this._listeners[event];
      return this;
    }
    var i = l.indexOf(fn);
    if (i >= 0) {
      l.splice(i, 1);
    }
    return this;
  };
  var CALLBACKS = { message: "onMessage", error: "onError", state: "onStateChange", gap: "onGap", reset: "onReset" };
  P._emit = function (event) {
    var args = Array.prototype.slice.call(arguments, 1);
    var fns = (this._listeners[event] || []).slice();
    var cb = this.options[CALLBACKS[event]];
    if (isFunction(cb)) {
      fns.unshift(cb);
    }
    for (var i = 0; i < fns.length; i++) {
      try {
        fns[i].apply(this, args);
      } catch (e) {
        reportLater(e);
      }
    }
  };

  P._setState = function (state) {
    if (!STATES[state] || state === this.state) {
      return;
    }
    var prev = this.state;
    this.state = state;
    if (this.role === "leader") {
      this._post({ t: "state", state: state });
    }
    this._emit("state", state, prev);
  };

  P._error = function (message, fields) {
    var e = new CometboxError(message, fields);
    this._emit("error", e);
    return e;
  };

  // ---- public API -----------------------------------------------------------

  // cursor: the position of the last message this page has, "EPOCH:ID".
  Object.defineProperty(P, "cursor", {
    get: function () { return formatCursor(this._cursor); }
  });

  P.start = function () {
    if (this._running) {
      return this;
    }
    if (!this._fetch) {
      throw new Error("Cometbox: no fetch in this environment");
    }
    this._running = true;
    this._frozen = false;
    this._warm = null;
    this._listen(true);
    this._gen++;
    this._setState("connecting");
    if (this.options.shared) {
      this._joinShared();
    } else {
      this._run(this._gen);
    }
    return this;
  };

  P.stop = function () {
    if (this._frozen) {
      // Stopped while in the back/forward cache: stay stopped on pageshow.
      this._frozen = false;
      this._listen(false);
    }
    if (!this._running) {
      return this;
    }
    this._running = false;
    this._listen(false);
    this._halt();
    this._leaveShared();
    this.transport = null;
    this._setState("disconnected");
    return this;
  };

  // _halt ends whatever the connection loop is doing: the request in flight,
  // the stream, the backoff wait, the pending acknowledgement.
  P._halt = function () {
    this._gen++;
    if (this._abort) {
      this._abort.abort();
      this._abort = null;
    }
    if (this._endStream) {
      this._endStream({ kind: "stopped" });
    }
    if (this._ackTimer) {
      clearTimeout(this._ackTimer);
      this._ackTimer = null;
    }
    this._warm = null;       // the next poll probes first
    if (this._ackAbort) {
      this._ackAbort.abort();
      this._ackAbort = null;
    }
    this._wakeNow();
  };

  P._listen = function (on) {
    var w = this._win;
    if (!w || !isFunction(w.addEventListener)) {
      return;
    }
    var d = this._doc;
    var h = this._handlers;
    var m = on ? "addEventListener" : "removeEventListener";
    w[m]("online", h.online);
    w[m]("offline", h.offline);
    w[m]("pagehide", h.pagehide);
    w[m]("pageshow", h.pageshow);
    if (d && isFunction(d.addEventListener)) {
      d[m]("visibilitychange", h.visibilitychange);
    }
  };

  // ---- cursor ---------------------------------------------------------------

  P._saveCursor = function () {
    var s = formatCursor(this._cursor);
    if (this.options.resume) {
      storageSet(this._session, this._key, s);
    }
    if (this.role === "leader") {
      storageSet(this._local, this._key + ":shared-cursor", s);
    }
  };

  P._applyReset = function (epoch, relay) {
    this._cursor = { epoch: epoch || "", id: 0 };
    this._ring = [];
    this._saveCursor();
    if (relay !== false && this.role === "leader") {
      this._post({ t: "reset", epoch: epoch });
    }
    this._emit("reset");
  };

  // _follow moves the cursor into a new epoch of the same sequence, its
  // id kept: what a node says without a reset when the sequence has moved
  // to a new Redis primary (docs/guarantees.md). A lost sequence always
  // comes with a reset first.
  P._follow = function (epoch) {
    this._cursor.epoch = epoch;
    for (var i = 0; i < this._ring.length; i++) {
      this._ring[i].epoch = epoch;
    }
    this._saveCursor();
    if (this.role === "leader") {
      this._post({ t: "follow", epoch: epoch });
    }
  };

  P._gap = function (gap) {
    if (this.role === "leader") {
      this._post({ t: "gap", gap: gap });
    }
    this._emit("gap", { first: gap.first, last: gap.last });
  };

  // _deliver hands one message to the application unless it already has
  // it. epoch is the sequence the message belongs to.
  P._deliver = function (epoch, m) {
    if (!m || typeof m.id !== "number") {
      return false;
    }
    if (epoch && this._cursor.epoch && epoch !== this._cursor.epoch) {
      this._follow(epoch); // the same sequence in a new epoch: no reset came
    }
    if (epoch && !this._cursor.epoch) {
      this._cursor.epoch = epoch;
    }
    if (!isNewMessage(this._cursor, epoch, m.id)) {
      return false;
    }
    this._cursor.id = m.id;
    this._saveCursor();
    var out = { id: m.id, data: m.data };
    if (typeof m.group === "string") {
      out.group = m.group; // a group message's copy: the group it went to
    }
    this._ring.push({ epoch: this._cursor.epoch, id: m.id, data: m.data, group: out.group });
    if (this._ring.length > RING) {
      this._ring.shift();
    }
    if (this.role === "leader") {
      this._post({ t: "msg", epoch: this._cursor.epoch, id: m.id, data: m.data, group: out.group });
    }
    this._emit("message", out);
    return true;
  };

  // _advance moves the cursor to what a node says it is, in the same epoch.
  P._advance = function (c) {
    if (!c) {
      return;
    }
    if (!this._cursor.epoch && c.epoch) {
      this._cursor.epoch = c.epoch;
    }
    if ((!c.epoch || c.epoch === this._cursor.epoch) && c.id > this._cursor.id) {
      this._cursor.id = c.id;
    }
    this._saveCursor();
  };

  // _page applies one poll answer: reset, gap, messages, cursor.
  P._page = function (msgs, cursorHdr, gapHdr, resetHdr) {
    var c = parseCursor(cursorHdr);
    if (resetHdr) {
      this._applyReset(c ? c.epoch : "");
    } else if (c && c.epoch && this._cursor.epoch && c.epoch !== this._cursor.epoch) {
      this._follow(c.epoch);
    }
    var gap = parseGap(gapHdr);
    if (gap) {
      this._gap(gap);
    }
    var epoch = (c && c.epoch) || this._cursor.epoch;
    for (var i = 0; i < msgs.length; i++) {
      this._deliver(epoch, msgs[i]);
    }
    this._advance(c);
  };

  // ---- tokens ---------------------------------------------------------------

  P._getToken = function () {
    var t = this.options.token;
    if (!isFunction(t)) {
      return Promise.resolve(t ? String(t) : "");
    }
    if (this._token !== null && !this._tokenStale) {
      return Promise.resolve(this._token);
    }
    var self = this;
    if (!this._tokenPromise) {
      this._tokenPromise = Promise.resolve()
        .then(function () { return t.call(self); })
        .then(function (v) {
          self._tokenPromise = null;
          self._token = v ? String(v) : "";
          self._tokenStale = false;
          return self._token;
        }, function (e) {
          self._tokenPromise = null;
          throw e;
        });
    }
    return this._tokenPromise;
  };

  P._query = function (token) {
    var q = "client=" + encodeURIComponent(this.client);
    var since = formatCursor(this._cursor);
    if (since) {
      q += "&since=" + encodeURIComponent(since);
    }
    if (token) {
      q += "&token=" + encodeURIComponent(token);
    }
    return q;
  };

  // ---- the connection loop (a solo tab, or the leader of shared tabs) --------

  P._alive = function (gen) {
    return this._running && gen === this._gen;
  };

  P._sleep = function (gen, ms) {
    var self = this;
    return new Promise(function (resolve) {
      if (!self._alive(gen)) {
        resolve();
        return;
      }
      var t = setTimeout(done, Math.max(0, ms));
      function done() {
        clearTimeout(t);
        if (self._wake === done) {
          self._wake = null;
        }
        resolve();
      }
      self._wake = done;
    });
  };

  P._wakeNow = function () {
    if (this._wake) {
      this._wake();
    }
  };

  P._wantSSE = function () {
    var t = this.options.transport;
    if (t === "longpoll" || !this._ES) {
      return false;
    }
    if (this._sseSuspect) {
      return false; // a stream failed before it began: a poll tells why
    }
    if (t === "auto" && this._sseDisabled) {
      return false;
    }
    return true;
  };

  P._run = function (gen) {
    var self = this;
    var step = function () {
      if (self._offline) {
        // Wait for "online" (or try again after a while: onLine may lie).
        self._setState("connecting");
        return self._sleep(gen, self.options.maxDelay).then(function () {
          self._offline = false;
        });
      }
      var url = self.urls[self._urlIndex];
      self.url = url;
      var attempt = self._wantSSE() ? self._streamOnce(gen, url) : self._pollOnce(gen, url);
      return attempt.then(function (out) {
        if (!self._alive(gen) || out.kind === "stopped") {
          return undefined;
        }
        var delay = self._outcome(out);
        if (delay === false) {
          self._fatal();
          return undefined;
        }
        if (out.kind !== "ok") {
          self._setState("connecting");
        }
        return delay > 0 ? self._sleep(gen, delay) : undefined;
      });
    };
    // Each turn ends on its own (it does not return the next one), so a
    // page that runs for days builds no chain of pending promises.
    var loop = function () {
      if (!self._alive(gen)) {
        return;
      }
      step().then(null, function (e) {
        // A bug, or an application callback that broke something: report
        // it and carry on after a backoff rather than go silent.
        reportLater(e);
        return self._sleep(gen, self._nextDelay());
      }).then(function () {
        loop();
      });
    };
    Promise.resolve().then(loop);
  };

  P._fatal = function () {
    this._running = false;
    this._listen(false);
    this._halt();
    this._leaveShared();
    this.transport = null;
    this._setState("disconnected");
  };

  P._rotate = function () {
    if (this.urls.length > 1) {
      this._urlIndex = (this._urlIndex + 1) % this.urls.length;
    }
  };

  P._nextDelay = function () {
    var d = backoff(this._attempt, this.options.minDelay, this.options.maxDelay, this._random);
    this._attempt++;
    return d;
  };

  // _outcome turns the end of one attempt into the delay before the next
  // (ms), or false to stop for good.
  P._outcome = function (out) {
    var o = this.options;
    var self = this;
    if (out.kind !== "ok") {
      this._warm = null; // the next poll probes first
    }
    var err = function (msg, fields) {
      fields.url = fields.url || out.url;
      return self._error(msg, fields);
    };
    switch (out.kind) {
      case "ok": {
        this._authRetried = false;
        if (this._sseSuspect) {
          // The node answers polls but its stream failed: count it.
          this._sseSuspect = false;
          this._sseFailures++;
          if (o.transport === "auto" && this._sseFailures >= 3) {
            this._sseDisabled = true;
          }
        }
        if (out.fastEmpty) {
          // An empty answer at once: a draining node. Go elsewhere, gently.
          this._rotate();
          return this._nextDelay();
        }
        this._attempt = 0;
        return 0;
      }
      case "stream_end": {
        if (out.stable) {
          this._attempt = 0;
          return backoff(0, o.minDelay, o.maxDelay, this._random);
        }
        this._rotate();
        return this._nextDelay();
      }
      case "stream_error": {
        this._sseSuspect = true;
        err("the event stream failed before it began; long-polling to learn why", { code: "stream_error" });
        return 0;
      }
      case "sse_buffered": {
        if (o.transport === "auto") {
          this._sseDisabled = true;
        } else {
          this._sseSuspect = true;
        }
        err("no hello on the event stream within " + o.helloTimeout + " ms: something buffers it; long-polling instead", { code: "sse_buffered" });
        return 0;
      }
      case "sse_stalled": {
        this._sseSuspect = true;
        this._rotate();
        var d0 = this._nextDelay();
        err("the event stream went silent past its heartbeat", { code: "sse_stalled", retryIn: d0 });
        return d0;
      }
      case "timeout": {
        this._rotate();
        var d1 = this._nextDelay();
        err("the poll outlived the node's timeout; retrying", { code: "timeout", retryIn: d1 });
        return d1;
      }
      case "network": {
        this._rotate();
        var d2 = this._nextDelay();
        err("network error: " + (out.error && out.error.message || "request failed"), { code: "network", retryIn: d2, cause: out.error });
        return d2;
      }
      case "token_error": {
        var d3 = this._nextDelay();
        err("the token function failed: " + (out.error && out.error.message || out.error), { code: "token_error", retryIn: d3, cause: out.error });
        return d3;
      }
      case "bad_response": {
        this._rotate();
        var d4 = this._nextDelay();
        err("the node's answer was not a JSON array", { code: "bad_response", status: out.status, retryIn: d4 });
        return d4;
      }
      case "http":
        return this._httpOutcome(out, err);
    }
    return this._nextDelay();
  };

  P._httpOutcome = function (out, err) {
    var o = this.options;
    var status = out.status;
    var code = out.code || "http_" + status;
    var text = out.message || ("HTTP " + status);
    var ra = parseRetryAfter(out.retryAfter);
    if (status === 401 || status === 403) {
      if (isFunction(o.token) && !this._authRetried) {
        this._authRetried = true;
        this._tokenStale = true;
        err(text, { code: code, status: status, retryIn: 0 });
        return 0;
      }
      err(text, { code: code, status: status, fatal: true });
      return false;
    }
    if (status === 429) {
      // This client's limit on this node (other tabs hold polls): wait here.
      var d = ra !== null ? Math.min(ra, o.maxRetryAfter) : this._nextDelay();
      err(text, { code: code, status: status, retryIn: d });
      return d;
    }
    if (status === 400) {
      if (code === "invalid_cursor") {
        this._cursor = { epoch: "", id: 0 };
        this._saveCursor();
        var d5 = this._nextDelay();
        err(text, { code: code, status: status, retryIn: d5 });
        return d5;
      }
      err(text, { code: code, status: status, fatal: true });
      return false;
    }
    // 503 and everything else: Retry-After is the node's advice about
    // itself, so the next node may be tried at once; a node is not asked
    // again before its Retry-After has passed.
    var d6 = this._nextDelay();
    if (ra !== null) {
      var now = Date.now();
      this._notBefore[out.url] = now + Math.min(ra, o.maxRetryAfter);
      this._rotate();
      d6 = Math.max(0, (this._notBefore[this.urls[this._urlIndex]] || 0) - now);
    } else {
      this._rotate();
    }
    err(text, { code: code, status: status, retryIn: d6 });
    return d6;
  };

  // _pollOnce makes one long-poll; it resolves with its outcome. A poll
  // that starts cold (after start() or a failure) is preceded by a probe.
  P._pollOnce = function (gen, url) {
    var self = this;
    this.transport = "longpoll";
    return this._getToken().then(function (token) {
      if (!self._alive(gen)) {
        return { kind: "stopped" };
      }
      if (!self.options.probe || self._warm === url) {
        return self._poll(gen, url, token);
      }
      return self._probe(gen, url, token).then(function (out) {
        if (out) {
          return out;
        }
        return self._alive(gen) ? self._poll(gen, url, token) : { kind: "stopped" };
      });
    }, function (e) {
      return { kind: "token_error", error: e, url: url };
    });
  };

  // _request fetches with its own AbortController (so that stop() ends it)
  // and a time limit; it resolves with {res, body} or an outcome.
  P._request = function (gen, url, init, limit, onStart) {
    var self = this;
    var ac = new AbortController();
    this._abort = ac;
    var timedOut = false;
    var expire = function () {
      timedOut = true;
      ac.abort();
    };
    this._expire = expire;
    var timer = setTimeout(expire, limit);
    this._requestStarted = Date.now();
    var extra = onStart ? onStart(ac) : null;
    var res;
    var done = function () {
      clearTimeout(timer);
      clearTimeout(extra);
      if (self._abort === ac) {
        self._abort = null;
      }
      if (self._expire === expire) {
        self._expire = null;
      }
    };
    init.signal = ac.signal;
    init.cache = "no-store";
    init.credentials = "omit";
    return Promise.resolve()
      .then(function () { return self._fetch(url, init); })
      .then(function (r) {
        res = r;
        return r.text();
      })
      .then(function (body) {
        done();
        return self._alive(gen) ? { res: res, body: body } : { kind: "stopped" };
      }, function (e) {
        done();
        if (!self._alive(gen)) {
          return { kind: "stopped" };
        }
        return { kind: timedOut ? "timeout" : "network", error: e };
      });
  };

  // _probe asks the node, with a quick POST /ack of what this page already
  // has, whether it would serve this client now (reachable, this origin
  // allowed, the token good, its Redis up), so that a refusal shows at once
  // rather than after a held poll. null means go on and poll.
  P._probe = function (gen, url, token) {
    var self = this;
    return this._request(gen, url + "/ack?" + this._query(token), { method: "POST" }, 10000).then(function (r) {
      if (!r.res) {
        r.url = url;
        return r;
      }
      var st = r.res.status;
      if (st >= 200 && st < 300) {
        self._warm = url;
        self._setState("connected");
        return null;
      }
      if (st === 404 || st === 405) {
        return null; // a node without /ack: the poll tells
      }
      return httpFailure(r.res, r.body, url);
    });
  };

  P._poll = function (gen, url, token) {
    var self = this;
    var o = this.options;
    var started = Date.now();
    return this._request(gen, url + "/poll?" + this._query(token), { method: "GET" }, o.pollTimeout + o.timeoutMargin, function (ac) {
      // A poll still open after a moment is held by a node: connected.
      return setTimeout(function () {
        if (self._alive(gen) && self._abort === ac) {
          self._setState("connected");
        }
      }, HELD_MS);
    }).then(function (r) {
      if (!r.res) {
        r.url = url;
        return r;
      }
      return self._pollAnswer(r.res, r.body, url, Date.now() - started);
    });
  };

  P._pollAnswer = function (res, body, url, elapsed) {
    var h = res.headers;
    if (res.status !== 200) {
      return httpFailure(res, body, url);
    }
    var msgs;
    try {
      msgs = JSON.parse(body);
    } catch (_) {
      msgs = null;
    }
    if (!Array.isArray(msgs)) {
      return { kind: "bad_response", status: res.status, url: url };
    }
    var reset = h.get("Cometbox-Reset");
    var gap = h.get("Cometbox-Gap");
    this._warm = url;
    this._setState("connected");
    this._page(msgs, h.get("Cometbox-Cursor"), gap, reset === "1" || reset === "true");
    return {
      kind: "ok",
      url: url,
      fastEmpty: msgs.length === 0 && !reset && !gap && elapsed < Math.min(FAST_EMPTY_MS, this.options.pollTimeout / 4)
    };
  };

  function httpFailure(res, body, url) {
    var code = "";
    var message = "";
    try {
      var j = JSON.parse(body);
      if (j && j.error) {
        code = j.error.code || "";
        message = j.error.message || "";
      }
    } catch (_) { /* not JSON: a proxy's page */ }
    return {
      kind: "http",
      status: res.status,
      code: code,
      message: message,
      retryAfter: res.headers.get("Retry-After"),
      url: url
    };
  }

  // _streamOnce holds one Server-Sent Events stream; it resolves when the
  // stream ends, with how it ended.
  P._streamOnce = function (gen, url) {
    var self = this;
    var o = this.options;
    this.transport = "sse";
    return this._getToken().then(function (token) {
      if (!self._alive(gen)) {
        return { kind: "stopped" };
      }
      return new Promise(function (resolve) {
        var es;
        var helloTimer = null;
        var watchdog = null;
        var heartbeat = 15000;
        var gotHello = false;
        var opened = 0;
        var delivered = false;
        var ended = false;

        function finish(out) {
          if (ended) {
            return;
          }
          ended = true;
          clearTimeout(helloTimer);
          clearTimeout(watchdog);
          if (es) {
            try {
              es.close();
            } catch (_) { /* closed */ }
          }
          if (self._endStream === finish) {
            self._endStream = null;
          }
          out.url = url;
          resolve(out);
        }
        function arm() {
          clearTimeout(watchdog);
          self._lastEvent = Date.now();
          watchdog = setTimeout(function () {
            finish({ kind: "sse_stalled" });
          }, heartbeat + o.timeoutMargin);
        }
        function parse(ev) {
          try {
            return JSON.parse(ev.data);
          } catch (_) {
            return null;
          }
        }
        self._endStream = finish;
        try {
          es = new self._ES(url + "/stream?" + self._query(token));
        } catch (e) {
          finish({ kind: "stream_error", error: e });
          return;
        }
        self._requestStarted = Date.now();
        helloTimer = setTimeout(function () {
          finish({ kind: "sse_buffered" });
        }, o.helloTimeout);

        es.addEventListener("hello", function (ev) {
          if (ended || !self._alive(gen)) {
            return;
          }
          var d = parse(ev) || {};
          clearTimeout(helloTimer);
          gotHello = true;
          opened = Date.now();
          if (d.heartbeat > 0) {
            heartbeat = d.heartbeat * 1000;
          }
          arm();
          var c = parseCursor(d.cursor);
          if (c && !self._cursor.epoch && !self._cursor.id) {
            self._advance(c);
          }
          self._sseFailures = 0;
          self._setState("connected");
          self._authRetried = false;
        });
        es.addEventListener("message", function (ev) {
          if (ended || !self._alive(gen)) {
            return;
          }
          arm();
          var m = parse(ev);
          var c = parseCursor(ev.lastEventId);
          if (m && self._deliver(c ? c.epoch : "", m)) {
            delivered = true;
            self._scheduleAck(gen, url);
          }
        });
        es.addEventListener("gap", function (ev) {
          if (ended || !self._alive(gen)) {
            return;
          }
          arm();
          var g = parse(ev);
          if (g && typeof g.first === "number") {
            self._gap({ first: g.first, last: g.last });
          }
        });
        es.addEventListener("reset", function (ev) {
          if (ended || !self._alive(gen)) {
            return;
          }
          arm();
          var d = parse(ev) || {};
          var c = parseCursor(d.cursor || ev.lastEventId);
          self._applyReset(c ? c.epoch : "");
        });
        es.addEventListener("ping", function () {
          if (!ended) {
            arm();
          }
        });
        es.onerror = function () {
          if (ended) {
            return;
          }
          if (!gotHello) {
            finish({ kind: "stream_error" });
            return;
          }
          var lived = Date.now() - opened;
          finish({ kind: "stream_end", stable: delivered || lived >= STREAM_STABLE_MS });
        };
      });
    }, function (e) {
      return { kind: "token_error", error: e, url: url };
    });
  };

  // _scheduleAck acknowledges, in the background and at most every
  // ackInterval, what an open stream delivered.
  P._scheduleAck = function (gen, url) {
    var self = this;
    if (this._ackTimer) {
      return;
    }
    this._ackTimer = setTimeout(function () {
      self._ackTimer = null;
      if (!self._alive(gen)) {
        return;
      }
      var since = formatCursor(self._cursor);
      if (!since || since === self._ackedCursor) {
        return;
      }
      self._getToken().then(function (token) {
        if (!self._alive(gen)) {
          return undefined;
        }
        var ac = new AbortController();
        self._ackAbort = ac;
        var t = setTimeout(function () { ac.abort(); }, 10000);
        return self._fetch(url + "/ack?" + self._query(token), {
          method: "POST",
          signal: ac.signal,
          cache: "no-store",
          credentials: "omit"
        }).then(function (r) {
          clearTimeout(t);
          if (self._ackAbort === ac) {
            self._ackAbort = null;
          }
          if (r.status >= 200 && r.status < 300) {
            self._ackedCursor = since;
            self._ackRetried = false;
          } else if ((r.status === 401 || r.status === 403) && isFunction(self.options.token) && !self._ackRetried) {
            // The token expired while the stream stayed open: fetch a new
            // one and acknowledge again.
            self._ackRetried = true;
            self._tokenStale = true;
            self._scheduleAck(gen, url);
          }
        });
      }).catch(function () { /* the next ack or connection acknowledges */ });
    }, this.options.ackInterval);
  };

  // ---- browser events -------------------------------------------------------

  P._onOnline = function () {
    this._offline = false;
    this._attempt = 0;
    this._wakeNow();
  };

  P._onOffline = function () {
    this._offline = true;
    // The request in flight will not be answered; end it now.
    if (this._abort) {
      this._abort.abort();
    }
    if (this._endStream) {
      this._endStream({ kind: "stream_end", stable: true });
    }
  };

  P._onVisibility = function () {
    var d = this._doc;
    if (!d || d.visibilityState !== "visible" || !this._running) {
      return;
    }
    // Back in front: a wait in backoff is cut short, and a request that
    // slept through its timeout with the tab is replaced.
    this._wakeNow();
    var o = this.options;
    var limit = o.pollTimeout + o.timeoutMargin;
    if (this._expire && this._requestStarted && Date.now() - this._requestStarted > limit) {
      this._expire();
    }
    if (this._endStream && this._lastEvent && Date.now() - this._lastEvent > limit) {
      this._endStream({ kind: "sse_stalled" });
    }
  };

  P._onPageHide = function (ev) {
    if (!this._running) {
      return;
    }
    if (ev && ev.persisted) {
      // Into the back/forward cache: let go of the connection (and of the
      // leadership), come back on pageshow. The listeners stay.
      this._running = false;
      this._halt();
      this._leaveShared();
      this.transport = null;
      this._setState("disconnected");
      this._frozen = true;
    } else if (this.role === "leader") {
      this._post({ t: "bye" });
    }
  };

  P._onPageShow = function (ev) {
    if (ev && ev.persisted && this._frozen) {
      this._frozen = false;
      this.start();
    }
  };

  // ---- shared mode ------------------------------------------------------------

  P._post = function (m) {
    if (this._bus) {
      m.from = this._tabId;
      this._bus.post(m);
    }
  };

  P._joinShared = function () {
    var self = this;
    var gen = this._gen;
    var back = this._back;
    this._back = true;
    this.role = "follower";
    this.transport = "shared";
    this._bus = new Bus(this._key, this._BC, this._local, this._win);
    this._bus.onmessage = function (m) {
      if (self._alive(gen)) {
        self._onShared(m);
      }
    };
    // A tab that opens later starts where the tabs are; one that was here
    // before (a reload, back from the back/forward cache, start() after
    // stop()) starts where it was.
    if (!back && !this._cursor.epoch && !this._cursor.id) {
      var c = parseCursor(storageGet(this._local, this._key + ":shared-cursor"));
      if (c) {
        this._cursor = c;
      }
    }
    this._hello(gen, back);
    this._emit("role", "follower");
    if (this._locks && isFunction(this._locks.request)) {
      var ac = typeof AbortController !== "undefined" ? new AbortController() : null;
      this._lockAbort = ac;
      var opts = ac ? { signal: ac.signal } : {};
      this._locks.request(this._key, opts, function () {
        if (!self._alive(gen)) {
          return undefined;
        }
        return new Promise(function (release) {
          self._releaseLock = release;
          self._lead(gen);
        });
      }).catch(function () { /* aborted: stop() while waiting */ });
    } else {
      this._leaseTick(gen);
    }
  };

  P._leaveShared = function () {
    if (!this._bus) {
      return;
    }
    this._held = null;
    clearTimeout(this._heldTimer);
    if (this.role === "leader") {
      this._post({ t: "bye" });
      var lease = readLease(this._local, this._key);
      if (lease && lease.id === this._tabId) {
        storageRemove(this._local, this._key + ":lease");
      }
    }
    if (this._lockAbort) {
      this._lockAbort.abort();
      this._lockAbort = null;
    }
    if (this._releaseLock) {
      this._releaseLock();
      this._releaseLock = null;
    }
    clearTimeout(this._leaseTimer);
    this._bus.close();
    this._bus = null;
    this.role = null;
  };

  function readLease(storage, key) {
    try {
      return JSON.parse(storageGet(storage, key + ":lease") || "null");
    } catch (_) {
      return null;
    }
  }

  // _leaseTick: leader election where Web Locks are missing. The leader
  // renews a lease in localStorage; when it lapses (the leader's tab
  // closed) a follower claims it, and confirms after a moment that no
  // other tab overwrote the claim.
  P._leaseTick = function (gen) {
    var self = this;
    if (!this._alive(gen)) {
      return;
    }
    var now = Date.now();
    var lease = readLease(this._local, this._key);
    var mine = lease && lease.id === this._tabId;
    if (this.role === "leader" && lease && !mine && lease.until > now) {
      // Another tab holds the lease (we were frozen): step down.
      this._demote();
    } else if (!lease || mine || lease.until < now) {
      storageSet(this._local, this._key + ":lease", JSON.stringify({ id: this._tabId, until: now + LEASE_MS }));
      if (this.role !== "leader") {
        setTimeout(function () {
          var l = readLease(self._local, self._key);
          if (self._alive(gen) && self.role !== "leader" && l && l.id === self._tabId) {
            self._lead(gen);
          }
        }, 150);
      }
    }
    this._leaseTimer = setTimeout(function () { self._leaseTick(gen); }, LEASE_TICK);
  };

  P._demote = function () {
    this._gen++;
    var g = this._gen;
    if (this._abort) {
      this._abort.abort();
    }
    if (this._endStream) {
      this._endStream({ kind: "stopped" });
    }
    this.role = "follower";
    this.transport = "shared";
    this._emit("role", "follower");
    // The bus listener and the lease ticker are bound to the old generation.
    var self = this;
    this._bus.onmessage = function (m) {
      if (self._alive(g)) {
        self._onShared(m);
      }
    };
    clearTimeout(this._leaseTimer);
    this._leaseTick(g);
  };

  // _lead: this tab won the election. It waits a moment for the relays of
  // the old leader still on their way, then connects from its own cursor.
  P._lead = function (gen) {
    var self = this;
    this._release();
    this.role = "leader";
    this._emit("role", "leader");
    this._post({ t: "leader" });
    var deadline = Date.now() + 1000;
    var wait = function () {
      if (!self._alive(gen)) {
        return;
      }
      var shared = parseCursor(storageGet(self._local, self._key + ":shared-cursor"));
      var behind = shared && shared.epoch === self._cursor.epoch && shared.id > self._cursor.id;
      if (behind && Date.now() < deadline) {
        setTimeout(wait, 25);
        return;
      }
      self._saveCursor();
      self._run(gen);
    };
    setTimeout(wait, 30);
  };

  P._onShared = function (m) {
    if (!m || m.from === this._tabId) {
      return;
    }
    var leader = this.role === "leader";
    if (this._held && !leader && (m.t === "msg" || m.t === "gap" || m.t === "reset" || m.t === "follow")) {
      this._held.push(m); // after the sync, which may hold what came before
      return;
    }
    switch (m.t) {
      case "msg":
        if (!leader) {
          this._deliver(m.epoch, { id: m.id, data: m.data, group: m.group });
        }
        break;
      case "gap":
        if (!leader && m.gap) {
          this._emit("gap", { first: m.gap.first, last: m.gap.last });
        }
        break;
      case "reset":
        if (!leader) {
          this._applyReset(m.epoch, false);
        }
        break;
      case "follow":
        if (!leader && m.epoch && this._cursor.epoch && m.epoch !== this._cursor.epoch) {
          this._follow(m.epoch);
        }
        break;
      case "state":
        if (!leader) {
          this._setState(m.state);
        }
        break;
      case "bye":
        if (!leader) {
          this._setState("connecting");
          if (!this._locks) {
            storageRemove(this._local, this._key + ":lease");
            clearTimeout(this._leaseTimer);
            this._leaseTick(this._gen);
          }
        }
        break;
      case "hello":
        if (leader) {
          this._welcome(m);
        }
        break;
      case "leader":
        if (!leader && this._held) {
          // Our hello may have reached no leader: ask the new one.
          this._post(this._helloMsg);
        }
        break;
      case "sync":
        if (!leader && m.to === this._tabId) {
          this._synced(m);
        }
        break;
    }
  };

  // _hello tells the leader where this tab stands, and holds back the
  // relays that come before the leader's answer (the sync), which may
  // carry older messages: they are applied after it, or after a moment if
  // no leader answers.
  P._hello = function (gen, back) {
    var self = this;
    this._held = [];
    this._helloMsg = { t: "hello", epoch: this._cursor.epoch, id: this._cursor.id, back: back };
    this._post(this._helloMsg);
    clearTimeout(this._heldTimer);
    this._heldTimer = setTimeout(function () {
      if (self._alive(gen)) {
        self._release();
      }
    }, 1000);
  };

  P._release = function () {
    var held = this._held;
    this._held = null;
    clearTimeout(this._heldTimer);
    for (var i = 0; held && i < held.length; i++) {
      this._onShared(held[i]);
    }
  };

  // _welcome answers a tab that joined: where the tabs stand, and the
  // messages it missed (a reload, or the back/forward cache, while the
  // leader delivered them): those above its cursor; or, when it was here
  // before in no epoch or another (the client's first message, or a new
  // sequence, came while it was away), all of this epoch's that it keeps.
  P._welcome = function (m) {
    var items = [];
    var epoch = this._cursor.epoch;
    var all = m.back && m.epoch !== epoch;
    if (epoch && (m.epoch === epoch || all)) {
      for (var i = 0; i < this._ring.length; i++) {
        if (this._ring[i].epoch === epoch && (all || this._ring[i].id > m.id)) {
          items.push(this._ring[i]);
        }
      }
    }
    this._post({ t: "sync", to: m.from, epoch: epoch, id: this._cursor.id, items: items, state: this.state });
  };

  // _synced applies the leader's answer. Messages it no longer has (its
  // history is the last RING, and a leader that came later has less) are
  // a gap for this tab, when the tab knows where it stood.
  P._synced = function (m) {
    var known = !!this._cursor.epoch && m.epoch === this._cursor.epoch;
    if (m.epoch && this._cursor.epoch && m.epoch !== this._cursor.epoch) {
      this._applyReset(m.epoch, false);
    }
    var next = this._cursor.id + 1;
    for (var i = 0; i < m.items.length; i++) {
      var it = m.items[i];
      if (known && it.id > next) {
        this._emit("gap", { first: next, last: it.id - 1 });
      }
      this._deliver(it.epoch, it);
      next = Math.max(next, it.id + 1);
    }
    if (known && m.id >= next) {
      this._emit("gap", { first: next, last: m.id });
    }
    this._advance({ epoch: m.epoch, id: m.id });
    if (m.state) {
      this._setState(m.state);
    }
    this._release();
  };

  return Cometbox;
});
