/**
 * The one WebSocket of a browser tab to `{base_url}clusternb/api/ws`, shared by every clusternb widget
 * (status bar, sidebar, notifications, dashboard tabs).
 *
 * Widgets ask for topics by name (`want`); the connection subscribes to the union, once, and unsubscribes a
 * topic when its last listener goes. The protocol is the server's (clusternb/server/websocket.py): `state`
 * frames only when a topic's data changed, `fresh` frames now and then for unchanged ones, `error` frames
 * (with `retry_after` under the rate limit). The newest body of each topic is kept, so a widget that
 * arrives late renders at once without a frame on the wire.
 *
 * The connection opts out of the server's `fresh` confirmations (`{"fresh": false}`), so unchanged data costs
 * a tab nothing: while the socket is live, the server pushes every change, so what the widgets show is
 * current. A dashboard tab, whose cards say "as of", asks for them back (`wantFresh`) while it is open.
 *
 * Before the first connection a REST probe (`clusternb/api/cluster/status`) tells whether the server
 * extension is there: on 404 one console line says so and nothing else happens (no reconnect loop).
 * A dropped connection is retried with exponential backoff (1 s doubling to 30 s).
 */

import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

/** A topic as the server takes it: a name, or a name with the REST endpoint's parameters. */
export type TopicSpec = string | ({ topic: string } & Record<string, unknown>);

/** A server frame, as the protocol sends it, or a connection event (`open`, `close`). */
export interface IMessage {
  type: string;
  topic?: string;
  key?: string;
  initial?: boolean;
  published?: number;
  body?: ITopicBody;
  topics?: Array<{ topic: string; key: string; as_of: string }> | string[];
  message?: string;
  retry_after?: number;
}

/** A REST body: rows under `data`, and when they were computed. */
export interface ITopicBody {
  as_of?: string;
  data: Array<Record<string, any>>;
  [extra: string]: unknown;
}

export type Listener = (message: IMessage) => void;

/** What `want` hands back: call `dispose` to let the topic go. */
export interface IHandle {
  dispose(): void;
}

/** A handle whose `dispose` runs `release` once, however often it is called. */
function handle(release: () => void): IHandle {
  let disposed = false;
  return {
    dispose: () => {
      if (!disposed) {
        disposed = true;
        release();
      }
    }
  };
}

/** Where the connection stands, for widgets that show it. */
export type ConnectionState = 'probing' | 'connecting' | 'live' | 'reconnecting' | 'disabled';

interface IWant {
  spec: TopicSpec;
  listeners: Set<Listener>;
}

const MIN_DELAY_MS = 1000;
const MAX_DELAY_MS = 30000;

function topicName(spec: TopicSpec): string {
  return typeof spec === 'string' ? spec : spec.topic;
}

export class ClusterConnection {
  constructor(settings?: ServerConnection.ISettings) {
    this.settings = settings ?? ServerConnection.makeSettings();
  }

  /** The server settings (base URL, token) every request of clusternb goes through. */
  readonly settings: ServerConnection.ISettings;

  get state(): ConnectionState {
    return this._state;
  }

  /** The newest body of a topic, if one arrived. */
  latest(topic: string): ITopicBody | undefined {
    return this._latest.get(topic);
  }

  /** When the server last said a topic's data was current (a state or a fresh frame), ISO text. */
  asOf(topic: string): string | undefined {
    return this._asOf.get(topic);
  }

  /** Frames and bytes received since the page loaded (what the benchmark counts from outside too). */
  readonly received = { frames: 0, bytes: 0 };

  /**
   * Follow a topic: `listener` gets its `state` and `fresh` frames, errors and `open`/`close` events. A topic
   * already received is replayed to the new listener at once. One subscription per topic name: a second
   * spec for the same name shares the first one's.
   */
  want(spec: TopicSpec, listener: Listener): IHandle {
    const name = topicName(spec);
    let want = this._wants.get(name);
    if (!want) {
      want = { spec, listeners: new Set() };
      this._wants.set(name, want);
      this._subscribe([name]);
    }
    want.listeners.add(listener);
    this._start();
    const body = this._latest.get(name);
    if (body) {
      this._call(listener, { type: 'state', topic: name, initial: true, body });
    }
    if (this._state === 'live') {
      this._call(listener, { type: 'open' });
    }
    return handle(() => this._release(name, listener));
  }

  /** Ask for the server's `fresh` confirmations of unchanged topics until the handle is disposed. */
  wantFresh(): IHandle {
    this._freshUsers += 1;
    if (this._freshUsers === 1) {
      this._send({ fresh: true });
    }
    return handle(() => {
      this._freshUsers -= 1;
      if (this._freshUsers === 0) {
        this._send({ fresh: false });
      }
    });
  }

  /** A REST call under `{base_url}clusternb/api/`, with the server's token and XSRF handling. */
  async request(path: string, init: RequestInit = {}): Promise<Response> {
    const url = URLExt.join(this.settings.baseUrl, 'clusternb/api', path);
    return ServerConnection.makeRequest(url, init, this.settings);
  }

  /** The dashboard page's URL (served by the server extension). */
  dashboardUrl(): string {
    return URLExt.join(this.settings.baseUrl, 'clusternb/');
  }

  /** Close the socket for good (the page is going away). */
  dispose(): void {
    this._disposed = true;
    if (this._timer !== undefined) {
      clearTimeout(this._timer);
    }
    this._ws?.close();
    this._ws = null;
  }

  // -- internals -------------------------------------------------------------------------------------

  private _release(name: string, listener: Listener): void {
    const want = this._wants.get(name);
    if (!want) {
      return;
    }
    want.listeners.delete(listener);
    if (want.listeners.size > 0) {
      return;
    }
    this._wants.delete(name);
    this._latest.delete(name);
    const key = this._keys.get(name);
    this._keys.delete(name);
    if (key !== undefined) {
      this._send({ unsubscribe: [key] });
    }
  }

  private _start(): void {
    if (this._started || this._disposed) {
      return;
    }
    this._started = true;
    void this._probe();
  }

  /** Is the server extension there? A 404 stops everything with one line; anything else connects. */
  private async _probe(): Promise<void> {
    this._state = 'probing';
    try {
      const response = await this.request('cluster/status', { method: 'GET' });
      if (response.status === 404) {
        this._state = 'disabled';
        console.info(
          'clusternb: the server extension is not enabled on this Jupyter server (no clusternb/api); ' +
            'the clusternb status bar, sidebar and notifications stay idle. ' +
            'Enable it with `jupyter server extension enable clusternb`.'
        );
        this._broadcast({ type: 'disabled' });
        return;
      }
      if (response.ok) {
        const body = (await response.json()) as ITopicBody;
        if (!this._latest.has('status') && this._wants.has('status')) {
          this._deliver({ type: 'state', topic: 'status', initial: true, body });
        }
      }
    } catch (reason) {
      // A network error: the WebSocket's own backoff handles it.
    }
    this._connect();
  }

  private _connect(): void {
    if (this._disposed) {
      return;
    }
    this._state = this._everOpen ? 'reconnecting' : 'connecting';
    const settings = this.settings;
    let url = URLExt.join(settings.wsUrl, 'clusternb/api/ws');
    if (settings.token && settings.appendToken !== false) {
      url += `?token=${encodeURIComponent(settings.token)}`;
    }
    const ws = new settings.WebSocket(url);
    this._ws = ws;
    ws.onopen = () => {
      this._delay = MIN_DELAY_MS;
      this._everOpen = true;
      this._state = 'live';
      this._keys.clear();
      this._broadcast({ type: 'open' });
      this._subscribe([...this._wants.keys()], { fresh: this._freshUsers > 0 });
    };
    ws.onmessage = (event: MessageEvent) => {
      const text = typeof event.data === 'string' ? event.data : '';
      this.received.frames += 1;
      this.received.bytes += text.length;
      let message: IMessage;
      try {
        message = JSON.parse(text) as IMessage;
      } catch {
        return;
      }
      this._onMessage(message);
    };
    ws.onclose = () => {
      if (this._ws !== ws) {
        return;
      }
      this._ws = null;
      this._keys.clear();
      if (this._disposed) {
        return;
      }
      this._state = 'reconnecting';
      this._broadcast({ type: 'close' });
      this._timer = window.setTimeout(() => this._connect(), this._delay);
      this._delay = Math.min(this._delay * 2, MAX_DELAY_MS);
    };
  }

  private _onMessage(message: IMessage): void {
    switch (message.type) {
      case 'state':
        if (message.topic && message.key) {
          this._keys.set(message.topic, message.key);
        }
        this._deliver(message);
        break;
      case 'fresh':
        for (const item of (message.topics ?? []) as Array<{ topic: string; as_of: string }>) {
          this._asOf.set(item.topic, item.as_of);
        }
        this._broadcast(message);
        break;
      case 'subscribed':
        for (const key of (message.topics ?? []) as string[]) {
          this._keys.set(key.split('?')[0], key);
        }
        break;
      case 'error':
        this._onError(message);
        break;
      default:
        break;
    }
  }

  private _onError(message: IMessage): void {
    if (message.message !== this._lastError) {
      console.warn('clusternb:', message.message);
      this._lastError = message.message;
    }
    this._broadcast(message);
    if (message.retry_after) {
      // The subscription was refused (rate limit): ask again for whatever is still missing, when told.
      window.setTimeout(() => {
        const missing = [...this._wants.keys()].filter(name => !this._keys.has(name));
        this._subscribe(missing, { fresh: this._freshUsers > 0 }); // the refused message set nothing
      }, 1000 * message.retry_after);
    }
  }

  private _deliver(message: IMessage): void {
    const name = message.topic ?? '';
    const want = this._wants.get(name);
    if (!want || !message.body) {
      return;
    }
    this._latest.set(name, message.body);
    if (message.body.as_of) {
      this._asOf.set(name, message.body.as_of);
    }
    for (const listener of [...want.listeners]) {
      this._call(listener, message);
    }
  }

  private _broadcast(message: IMessage): void {
    const all = new Set<Listener>();
    for (const want of this._wants.values()) {
      want.listeners.forEach(l => all.add(l));
    }
    all.forEach(l => this._call(l, message));
  }

  private _call(listener: Listener, message: IMessage): void {
    try {
      listener(message);
    } catch (reason) {
      console.error('clusternb: a listener failed', reason);
    }
  }

  private _subscribe(names: string[], extra: Record<string, unknown> = {}): void {
    const specs = names.map(name => this._wants.get(name)?.spec).filter(s => s !== undefined);
    if (specs.length > 0) {
      this._send({ ...extra, subscribe: specs });
    } else if (Object.keys(extra).length > 0) {
      this._send(extra);
    }
  }

  private _send(message: Record<string, unknown>): void {
    if (this._ws && this._ws.readyState === WebSocket.OPEN) {
      this._ws.send(JSON.stringify(message));
    }
  }

  private _wants = new Map<string, IWant>();
  private _keys = new Map<string, string>(); // topic name -> the server's key, to unsubscribe with
  private _latest = new Map<string, ITopicBody>();
  private _asOf = new Map<string, string>();
  private _ws: WebSocket | null = null;
  private _state: ConnectionState = 'probing';
  private _started = false;
  private _disposed = false;
  private _everOpen = false;
  private _delay = MIN_DELAY_MS;
  private _timer: number | undefined = undefined;
  private _lastError: string | undefined = undefined;
  private _freshUsers = 0;
}
