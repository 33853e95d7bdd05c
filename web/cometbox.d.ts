// Type declarations of the cometbox browser client (cometbox.js, and its
// ES module entry cometbox.mjs). See web/README.md for what each member does.
//
//   import { Cometbox } from "/cometbox.mjs";          // ES module
//   const { Cometbox } = require("./cometbox.js");      // CommonJS (Node, bundlers)
//   <script src="/cometbox.js"></script>               // global Cometbox

/**
 * A message as the back end published it: its id in the client's sequence, and its data (any JSON value).
 * A group message arrives the same way, each member's copy with its own id in that member's sequence,
 * acknowledged, gapped and reset like any other; only `group` tells it apart.
 */
export interface CometboxMessage<T = unknown> {
  id: number;
  data: T;
  /** The group the back end sent it to (a copy of a group message); absent for a message sent to this client. */
  group?: string;
}

/** Messages first to last can no longer be delivered (queue cap, or another page acknowledged them). */
export interface CometboxGap {
  first: number;
  last: number;
}

export type CometboxState = "disconnected" | "connecting" | "connected";
export type CometboxTransport = "auto" | "sse" | "longpoll";
export type CometboxRole = "leader" | "follower";

/** What onError receives. */
export interface CometboxError extends Error {
  name: "CometboxError";
  /**
   * The node's stable code (token_missing, token_invalid, token_expired, unavailable,
   * overloaded, too_many_polls, invalid_client, invalid_cursor, ...), "http_STATUS" for an
   * answer without one, or the client's own: network, timeout, bad_response,
   * stream_error, sse_buffered, sse_stalled, token_error.
   */
  code: string;
  /** The HTTP status, 0 without one. */
  status: number;
  /** The node URL the failed attempt went to. */
  url: string;
  /** True when the client stopped because of this error (state is then "disconnected"). */
  fatal: boolean;
  /** Milliseconds until the next attempt, when there is one. */
  retryIn?: number;
  /** The underlying exception (network errors, a failing token function). */
  cause?: unknown;
}

export interface CometboxOptions<T = unknown> {
  /** One node URL or several, tried in order on network errors and 503 (failover). "" is this page's origin. */
  url?: string | string[];
  /** The client id the back end publishes to. Required. */
  client: string;
  /** A token minted by the back end, or a function that fetches a fresh one (called again when a node refuses the token). */
  token?: string | null | (() => string | Promise<string>);
  /** "auto" (default): SSE where EventSource exists, long-poll otherwise or when the stream is buffered. */
  transport?: CometboxTransport;
  /** Tabs of one client share one connection: one leader tab holds it and relays to the others. Default false. */
  shared?: boolean;
  /** Keep the cursor in sessionStorage so a reload resumes without replay. Default true. */
  resume?: boolean;
  /** The node's -poll-timeout in ms. Default 25000. */
  pollTimeout?: number;
  /** A poll outliving pollTimeout, or a stream silent past its heartbeat, by this many ms is aborted. Default 10000. */
  timeoutMargin?: number;
  /** Backoff base in ms (full jitter: a random delay below min(maxDelay, minDelay * 2^attempt)). Default 500. */
  minDelay?: number;
  /** Backoff cap in ms. Default 20000. */
  maxDelay?: number;
  /** The longest Retry-After honoured, ms. Default 300000. */
  maxRetryAfter?: number;
  /** SSE: without a hello event within this many ms, the stream is taken as buffered. Default 5000. */
  helloTimeout?: number;
  /** SSE: acknowledge (POST /ack) at most this often, ms. Default 1000. */
  ackInterval?: number;
  /** Long-poll: a quick POST /ack before a poll that starts cold, so refusals show at once. Default true. */
  probe?: boolean;

  onMessage?: (this: Cometbox<T>, msg: CometboxMessage<T>) => void;
  onError?: (this: Cometbox<T>, err: CometboxError) => void;
  onStateChange?: (this: Cometbox<T>, state: CometboxState, previous: CometboxState) => void;
  onGap?: (this: Cometbox<T>, gap: CometboxGap) => void;
  onReset?: (this: Cometbox<T>) => void;

  // Environment, for tests: each defaults to the browser's own.
  fetch?: typeof fetch;
  EventSource?: { new (url: string): EventSource } | null;
  window?: EventTarget | null;
  document?: (EventTarget & { visibilityState?: string }) | null;
  sessionStorage?: Pick<Storage, "getItem" | "setItem" | "removeItem"> | null;
  localStorage?: Pick<Storage, "getItem" | "setItem" | "removeItem"> | null;
  locks?: { request(name: string, options: { signal?: AbortSignal }, cb: (lock: unknown) => unknown): Promise<unknown> } | null;
  BroadcastChannel?: { new (name: string): BroadcastChannel } | null;
  random?: () => number;
}

export interface CometboxEvents<T = unknown> {
  message: (msg: CometboxMessage<T>) => void;
  error: (err: CometboxError) => void;
  state: (state: CometboxState, previous: CometboxState) => void;
  gap: (gap: CometboxGap) => void;
  reset: () => void;
  role: (role: CometboxRole) => void;
}

export interface CometboxUtil {
  parseCursor(s: string | null | undefined): { epoch: string; id: number } | null;
  formatCursor(c: { epoch: string; id: number }): string;
  compareCursor(a: string | { epoch: string; id: number }, b: string | { epoch: string; id: number }): number;
  parseGap(s: string | null | undefined): CometboxGap | null;
  parseRetryAfter(value: string | null | undefined, now?: number): number | null;
  backoff(attempt: number, base: number, cap: number, random?: () => number): number;
  isNewMessage(cursor: { epoch: string; id: number }, epoch: string, id: number): boolean;
}

export declare class Cometbox<T = unknown> {
  constructor(options: CometboxOptions<T>);

  static readonly VERSION: string;
  static readonly CometboxError: { new (message: string, fields?: Partial<CometboxError>): CometboxError; prototype: CometboxError };
  static readonly defaults: Readonly<Omit<CometboxOptions, "client">>;
  static readonly util: CometboxUtil;

  /** The options in force (defaults merged with the ones given). */
  readonly options: Readonly<CometboxOptions<T>> & { url: string | string[] };
  /** The node URLs, trailing slashes removed. */
  readonly urls: string[];
  /** The node URL in use (or last used). */
  readonly url: string;
  readonly client: string;
  readonly state: CometboxState;
  /** The transport in use: "sse", "longpoll", "shared" (a follower tab in shared mode), or null when stopped. */
  readonly transport: "sse" | "longpoll" | "shared" | null;
  /** Shared mode: whether this tab holds the connection. null when not shared or stopped. */
  readonly role: CometboxRole | null;
  /** The last message this page has, "EPOCH:ID" ("" before any). */
  readonly cursor: string;

  /** Connects (or joins the shared tabs). Returns this. */
  start(): this;
  /** Disconnects at once: aborts the request in flight, closes the stream, hands leadership over. Returns this. */
  stop(): this;

  on<K extends keyof CometboxEvents<T>>(event: K, fn: CometboxEvents<T>[K]): this;
  off<K extends keyof CometboxEvents<T>>(event: K, fn?: CometboxEvents<T>[K]): this;
}

export default Cometbox;

declare global {
  /** Set by <script src="/cometbox.js">. */
  var Cometbox: typeof import("./cometbox").Cometbox;
}
