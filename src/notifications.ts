/**
 * Firing alerts as JupyterLab notifications (`Notification` of @jupyterlab/apputils): node, rule and value,
 * with "Open dashboard" and "Acknowledge" actions; the notification is updated when the alert resolves.
 *
 * One notification per firing, never repeated:
 * - across browser tabs of the same origin: one tab notifies, the one holding the Web Lock
 *   `clusternb-notifier` (held for the page's life, handed to another tab when it closes; the browser
 *   arbitrates, so two tabs can never both hold it). localStorage alone cannot decide this: it reaches other
 *   tabs' processes asynchronously, and two tabs that read it at once both saw "unclaimed" in a test run.
 *   Where Web Locks are missing (plain http to a remote host is no secure context) a tab claims a firing in
 *   localStorage by write, wait, read back (the last writer wins and only it notifies);
 * - across reconnects and page loads: every firing notified is recorded in localStorage (and in memory), so
 *   an alert already firing when the page first connects is notified once, and never again; a tab that
 *   takes the lock over skips what the previous holder notified.
 * A firing is `alert_id` (rule:node, stable) plus the time it fired, so a node that goes offline again after
 * coming back is a new firing and notifies again.
 */

import { Notification } from '@jupyterlab/apputils';

import { ClusterConnection, IHandle, IMessage } from './connection';
import { text } from './format';
import { IClusterSettings, NotificationLevel } from './settings';

const CLAIM_PREFIX = 'clusternb:notified:';
/** Claims older than this are pruned at start: a week-old firing still going is not announced again. */
const CLAIM_TTL_MS = 7 * 24 * 3600 * 1000;
const SEVERITIES: Record<NotificationLevel, string[]> = {
  off: [],
  critical: ['critical'],
  warning: ['warning', 'critical']
};

/** POST the acknowledgement; true when the server took it. */
export async function acknowledge(connection: ClusterConnection, alertId: string): Promise<boolean> {
  try {
    const path = `alerts/${encodeURIComponent(alertId)}/acknowledge`;
    const response = await connection.request(path, { method: 'POST', body: '{}' });
    if (!response.ok) {
      console.warn('clusternb: acknowledging', alertId, 'failed:', response.status, await response.text());
    }
    return response.ok;
  } catch (reason) {
    console.warn('clusternb: acknowledging', alertId, 'failed:', reason);
    return false;
  }
}

/** The identity of one firing of an alert. */
export function firingKey(alert: Record<string, any>): string {
  return `${text(alert.alert_id)}@${text(alert.fired_at ?? alert.started_at)}`;
}

/** The notification's text: node, rule, value (the message says them in the rule's words). */
export function notificationText(alert: Record<string, any>): string {
  const value = typeof alert.value === 'number' ? Number(alert.value.toFixed(2)) : text(alert.value);
  return `clusternb ${text(alert.severity)}: ${text(alert.node)} · ${text(alert.rule)} = ${value}\n${text(alert.message)}`;
}

export class AlertNotifier {
  constructor(connection: ClusterConnection, openDashboard: (node?: string) => void, settings: IClusterSettings) {
    this._connection = connection;
    this._open = openDashboard;
    this._level = settings.notifications;
    pruneClaims();
    const locks = (navigator as any).locks;
    if (locks?.request) {
      void locks.request('clusternb-notifier', () => {
        this._leader = true;
        const body = connection.latest('alerts');
        if (body) {
          this._onMessage({ type: 'state', topic: 'alerts', body });
        }
        return new Promise(() => undefined); // held until the page goes
      });
    } else {
      this._leader = true;
      this._byClaim = true;
    }
    this._handle = connection.want('alerts', (message: IMessage) => this._onMessage(message));
  }

  /** Whether this tab is the one that notifies (tests read it). */
  get leader(): boolean {
    return this._leader;
  }

  /** Lab notification ids of the firings this tab notified, by firing key (tests read it). */
  readonly shown = new Map<string, string>();

  configure(settings: IClusterSettings): void {
    this._level = settings.notifications;
  }

  dispose(): void {
    this._handle.dispose();
  }

  private _onMessage(message: IMessage): void {
    if (message.type !== 'state' || !message.body || !this._leader) {
      return;
    }
    const firing = new Map<string, Record<string, any>>();
    for (const alert of message.body.data) {
      if (alert.state === 'firing') {
        firing.set(firingKey(alert), alert);
      }
    }
    for (const [key, alert] of firing) {
      if (this._seen.has(key)) {
        continue;
      }
      this._seen.add(key);
      if (!SEVERITIES[this._level].includes(String(alert.severity))) {
        continue;
      }
      if (this._byClaim) {
        void claim(key).then(mine => mine && this._notify(key, alert));
      } else if (!claimed(key)) {
        record(key);
        this._notify(key, alert);
      }
    }
    for (const [key, id] of [...this.shown]) {
      if (!firing.has(key)) {
        this._resolved(key, id);
      }
    }
  }

  private _notify(key: string, alert: Record<string, any>): void {
    const alertId = String(alert.alert_id);
    const node = String(alert.node);
    const id = Notification.emit(notificationText(alert), alert.severity === 'critical' ? 'error' : 'warning', {
      autoClose: false,
      actions: [
        { label: 'Open dashboard', callback: () => this._open(node), displayType: 'link' },
        {
          label: 'Acknowledge',
          callback: (event: MouseEvent) => {
            event.preventDefault(); // keep the toast: it says whether the acknowledgement went through
            void acknowledge(this._connection, alertId).then(ok => {
              const id = this.shown.get(key);
              if (id !== undefined) {
                Notification.update({
                  id,
                  // First: Lab cuts messages after 140 characters, and node names can be long.
                  message: `${ok ? 'acknowledged' : 'acknowledging failed'} · ${notificationText(alert)}`,
                  autoClose: ok ? 5000 : false
                });
              }
            });
          },
          displayType: 'accent'
        }
      ],
      data: { clusternb: key }
    });
    this.shown.set(key, id);
  }

  private _resolved(key: string, id: string): void {
    this.shown.delete(key);
    const [alertId] = key.split('@');
    Notification.update({
      id,
      message: `clusternb: resolved · ${alertId}`,
      type: 'success',
      autoClose: 10000,
      actions: [{ label: 'Open dashboard', callback: () => this._open(), displayType: 'link' }]
    });
  }

  private _connection: ClusterConnection;
  private _open: (node?: string) => void;
  private _level: NotificationLevel;
  private _handle: IHandle;
  private _seen = new Set<string>();
  private _leader = false;
  private _byClaim = false;
}

function claimed(key: string): boolean {
  try {
    return localStorage.getItem(CLAIM_PREFIX + key) !== null;
  } catch {
    return false;
  }
}

function record(key: string): void {
  try {
    localStorage.setItem(CLAIM_PREFIX + key, JSON.stringify({ tab: TAB, at: Date.now() }));
  } catch {
    // no storage: the in-memory record still keeps this tab from repeating itself
  }
}

/** Without Web Locks: claim a firing for this tab; true when no tab claimed it before (best effort). */
async function claim(key: string): Promise<boolean> {
  const storageKey = CLAIM_PREFIX + key;
  try {
    if (localStorage.getItem(storageKey) !== null) {
      return false;
    }
    localStorage.setItem(storageKey, JSON.stringify({ tab: TAB, at: Date.now() }));
    await new Promise(resolve => setTimeout(resolve, 50 + Math.random() * 100));
    return JSON.parse(localStorage.getItem(storageKey) ?? '{}').tab === TAB;
  } catch {
    return true; // no storage (a locked-down browser): better a duplicate than a missed alert
  }
}

function pruneClaims(): void {
  try {
    const now = Date.now();
    for (let i = localStorage.length - 1; i >= 0; i--) {
      const key = localStorage.key(i);
      if (key?.startsWith(CLAIM_PREFIX)) {
        const at = Number(JSON.parse(localStorage.getItem(key) ?? '{}').at);
        if (!(now - at < CLAIM_TTL_MS)) {
          localStorage.removeItem(key);
        }
      }
    }
  } catch {
    // no storage: nothing to prune
  }
}

const TAB = `${Date.now()}-${Math.random()}`;
