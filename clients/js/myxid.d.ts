// TypeScript declarations of myxid.js (the myxid-client package): Myxi's
// API as Myxi's own client has it, and myxid's additions. See README.md.

/** Close codes the daemon sends, and the client's own keepalive code. */
export declare const CloseCodes: Readonly<{
  NORMAL: 1000; GOING_AWAY: 1001; PROTOCOL: 1002; POLICY: 1008; TOO_BIG: 1009;
  PING_TIMEOUT: 4000; SLOW_CONSUMER: 4008;
  /** Local: no Pong arrived within keepaliveTimeout. */
  KEEPALIVE_TIMEOUT: 4900;
}>;

/** A server event as it arrives: {event, tag, payload, mq}. */
export interface MyxiEvent<P = any> {
  event: string;
  tag?: unknown;
  payload: P;
  /** Present on events published to an exchange: its name, routing key and,
   * on an exchange with history, the event's position. */
  mq?: { e: string; rk: string; o?: number };
}

/** A refused or failed request; `code` is the Error's payload.error. */
export declare class MyxiError extends Error {
  constructor(code: string, message?: string, event?: MyxiEvent | null);
  readonly name: 'MyxiError';
  /** e.g. "SubscriptionDenied", "Timeout", "Disconnected", "NotConnected". */
  code: string;
  event: MyxiEvent | null;
  payload: any;
}

/** What SocketClosed and SocketDisconnected receive (a myxid addition). */
export interface CloseInfo {
  code: number;
  reason: string;
  wasClean: boolean;
  /** true when the client gave up on the socket itself (keepalive). */
  local: boolean;
  willReconnect: boolean;
  /** ms until the next attempt, or null. */
  delay: number | null;
  /** Why there is no reconnect, when there is none. */
  why: string;
}

export interface ReconnectInfo { attempt: number; delay: number; code: number }

export interface ConnectionOptions {
  /** A WebSocket constructor (in Node, `ws`); default globalThis.WebSocket. */
  WebSocket?: unknown;
  /** The URL, when the options are the only argument. */
  url?: string;
  autoConnect?: boolean;
  reconnect?: boolean;
  minDelay?: number;
  maxDelay?: number;
  slowDelay?: number;
  stableAfter?: number;
  keepalive?: number;
  keepaliveTimeout?: number;
  requestTimeout?: number;
  authRetries?: number;
  logger?: { debug(...args: unknown[]): void } | null;
  /** Fall back to the SSE transport when a WebSocket cannot open (default true). */
  sse?: boolean;
  /** The SSE endpoint; default the server's http(s) URL with path /events. */
  sseUrl?: string | null;
  /** The first transport tried (default 'websocket'). */
  transport?: 'websocket' | 'sse';
  /** fetch() for the SSE transport; default globalThis.fetch. */
  fetch?: unknown;
}

/** A connection callback: `this` is the connection. */
export type ConnectionCallback = (this: Connection, payload?: any, tag?: unknown, mq?: { e: string; rk: string }) => void;
/** A subscription callback: `this` is the subscription. */
export type SubscriptionCallback = (this: Subscription, payload: any, tag?: unknown) => void;
/** Myxi's message handler: `this` is the param given with it. */
export type MessageHandler<T = any> = (this: T, subscription: Subscription, event: string, payload: any, tag?: unknown) => void;

/** myxid: what a new subscription asks for first. */
export interface SubscribeOptions {
  /** On an exchange with history: the last N events first (a late joiner). */
  history?: number;
}

export interface Subscription {
  connection: Connection;
  exchange: string;
  routingKey?: string | number | null;
  subscribed: boolean;
  /** Subscribe again after a reconnect; false once unsubscribe() was called. */
  reconnect: boolean;
  callbacks: Record<string, SubscriptionCallback[]>;
  messageHandlers: Record<string, { handler: MessageHandler; param: unknown }>;
  /** The last Error event about this subscription (myxid). */
  lastError: MyxiEvent | null;
  /** The final refusal, if any (myxid). */
  denied: MyxiError | null;
  /** History: the last position received (resumed from after a reconnect). */
  position: number | null;
  /** History: the epoch of the positions. */
  epoch: string | null;
  /** History: whether the last resume was complete (null: none yet). */
  recovered: boolean | null;

  key(): string;
  /** Sends Subscribe; what sendAction() returned. */
  subscribe(): boolean;
  /** true when Unsubscribe was sent; false while disconnected. */
  unsubscribe(): boolean;
  /** Myxi: a handler named `name` (replacing one of that name) for every message. */
  addMessageHandler<T>(name: string, handler: MessageHandler<T>, param?: T): { handler: MessageHandler<T>; param: T | undefined };
  removeMessageHandler(name: string): boolean;
  /** Callbacks for the messages named `event`, and myxid's
   * SubscriptionConfirmed / SubscriptionEnded / SubscriptionRefused /
   * SubscriptionGap (a resume that could not be recovered: refetch).
   * Returns the number of callbacks for that event, as Myxi's does. */
  on(event: string, callback: SubscriptionCallback): number;
  off(event: string, callback: SubscriptionCallback): boolean;
  /** Resolves at Subscribed; rejects with a MyxiError when refused. */
  whenSubscribed(): Promise<Subscription>;
}

export interface SubscriptionConstructor {
  new (connection: Connection, exchange: string, routingKey?: string | number | null, options?: SubscribeOptions): Subscription;
  (connection: Connection, exchange: string, routingKey?: string | number | null, options?: SubscribeOptions): Subscription;
  keyFor(exchange: string, routingKey?: string | number | null): string;
  readonly prototype: Subscription;
}
export declare const Subscription: SubscriptionConstructor;

export interface Connection {
  serverURL: string;
  connected: boolean;
  authenticated: boolean;
  subscriptions: Record<string, Subscription>;
  callbacks: Record<string, ConnectionCallback[]>;
  reconnect: boolean;
  reconnectTimer: unknown;
  authentication_callback: ((this: Connection) => void) | null;
  /** The latest socket, open or not. */
  websocket: unknown;
  /** 'websocket', or 'sse' once a WebSocket could not open (or when asked). */
  transport: 'websocket' | 'sse';
  options: Required<Omit<ConnectionOptions, 'url'>>;
  /** The Welcome id of the current socket (myxid). */
  sessionId: string | null;
  /** The user id from Authenticated (myxid). */
  userId: string | null;
  lastClose: CloseInfo | null;
  attempts: number;
  authFailed: MyxiEvent | null;

  connect(): boolean;
  disconnect(): void;
  /** Myxi: runs after every connect; returns the callback. */
  authentication<F extends (this: Connection) => void>(callback: F): F;
  /** myxid: sends Authenticate {session_id} after every connect. */
  authenticate(token: string | (() => string | Promise<string>)): this;
  /** Fires SocketAuthenticated and sends the waiting subscriptions. */
  isAuthenticated(): Array<boolean | undefined>;
  sendAction(action: string, payload?: unknown, tag?: unknown): boolean;
  request<P = any>(action: string, payload?: unknown, options?: { timeout?: number }): Promise<MyxiEvent<P>>;
  on(event: 'SocketClosed' | 'SocketDisconnected', callback: (this: Connection, info: CloseInfo) => void): number;
  on(event: 'SocketReconnecting', callback: (this: Connection, info: ReconnectInfo) => void): number;
  on(event: 'SocketMessageReceived', callback: (this: Connection, data: MyxiEvent) => void): number;
  on(event: string, callback: ConnectionCallback): number;
  off(event: string, callback: (...args: any[]) => void): boolean;
  subscribe(exchange: string, routingKey?: string | number | null, options?: SubscribeOptions): Subscription;
}

export interface ConnectionConstructor {
  new (serverURL?: string | URL | null, options?: ConnectionOptions): Connection;
  new (options: ConnectionOptions): Connection;
  (serverURL?: string | URL | null, options?: ConnectionOptions): Connection;
  (options: ConnectionOptions): Connection;
  readonly prototype: Connection;
}
export declare const Connection: ConnectionConstructor;

export declare const Myxi: {
  Connection: ConnectionConstructor;
  Subscription: SubscriptionConstructor;
  MyxiError: typeof MyxiError;
  CloseCodes: typeof CloseCodes;
  version: string;
};
export default Myxi;
