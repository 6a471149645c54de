/**
 * The status bar item: cluster health (colour and word), nodes online of total, cluster CPU and memory in
 * use. The age of the data is in its title (computed when the pointer arrives, so hovering costs nothing
 * until then); a click opens the dashboard tab. The DOM is touched only when the text or health changed.
 */

import { Widget } from '@lumino/widgets';

import { ClusterConnection, IHandle, IMessage, ITopicBody } from './connection';
import { ago, clock, el, percent, text } from './format';
import { IClusterSettings, StatusField } from './settings';

/** What one status row says, field by field. */
export function statusParts(row: Record<string, any>, fields: StatusField[]): string[] {
  const parts: string[] = [];
  for (const field of fields) {
    switch (field) {
      case 'health':
        parts.push(text(row.health));
        break;
      case 'nodes':
        parts.push(`${text(row.nodes_online)} online of ${text(row.nodes_total)}`);
        break;
      case 'cpu':
        parts.push(`CPU ${percent(row.cpu_percent)}`);
        break;
      case 'memory':
        parts.push(`Mem ${percent(row.mem_used_percent)}`);
        break;
      case 'alerts':
        parts.push(`${text(row.alerts_firing)} alerts`);
        break;
    }
  }
  return parts;
}

export class StatusItem extends Widget {
  constructor(connection: ClusterConnection, open: () => void, settings: IClusterSettings) {
    super();
    this._connection = connection;
    this._fields = settings.statusBarFields;
    this.addClass('clusternb-StatusItem');
    this.addClass('jp-StatusBar-GroupItem');
    this.node.setAttribute('role', 'button');
    this.node.tabIndex = 0;
    this._dot = el('span', 'clusternb-dot');
    this._text = el('span', 'clusternb-StatusItem-text', 'clusternb …');
    this.node.append(this._dot, this._text);
    this.node.addEventListener('click', open);
    this.node.addEventListener('keydown', (event: KeyboardEvent) => {
      if (event.key === 'Enter' || event.key === ' ') {
        open();
      }
    });
    this.node.addEventListener('mouseenter', () => this._updateTitle());
    this._handle = connection.want('status', (message: IMessage) => this._onMessage(message));
    this._updateTitle();
  }

  /** How many times the DOM was rewritten (tests and the benchmark read it to check "only on change"). */
  renders = 0;

  configure(settings: IClusterSettings): void {
    this._fields = settings.statusBarFields;
    const body = this._connection.latest('status');
    if (body) {
      this._render(body);
    }
  }

  dispose(): void {
    this._handle.dispose();
    super.dispose();
  }

  private _onMessage(message: IMessage): void {
    if (message.type === 'state' && message.body) {
      this._render(message.body);
    } else if (message.type === 'disabled') {
      this._show('', 'clusternb: server extension not enabled', 'off');
    } else if (message.type === 'close') {
      this._stale = true;
      this._show(this._shown.text, this._shown.title, this._shown.health);
    } else if (message.type === 'open') {
      this._stale = false;
    }
  }

  private _render(body: ITopicBody): void {
    const row = body.data[0];
    if (!row) {
      return;
    }
    this._show(statusParts(row, this._fields).join(' · '), '', String(row.health ?? 'unknown'));
  }

  /** Write the DOM only when what it shows changes. */
  private _show(content: string, title: string, health: string): void {
    const key = `${content}\u0000${health}\u0000${this._stale}`;
    if (key === this._key) {
      return;
    }
    this._key = key;
    this._shown = { text: content, title, health };
    this.renders += 1;
    this._text.textContent = content || 'clusternb';
    this._dot.className = `clusternb-dot clusternb-health-${health}`;
    this.node.dataset.health = health;
    this.node.classList.toggle('clusternb-stale', this._stale);
    this._updateTitle();
  }

  private _updateTitle(): void {
    if (this._shown.title) {
      this.node.title = this._shown.title;
      return;
    }
    const asOf = this._connection.asOf('status');
    const row = this._connection.latest('status')?.data[0];
    const live = this._connection.state === 'live';
    const lines = [
      `clusternb: ${text(row?.health ?? 'waiting for data')}`,
      // Live, the server pushes every change within its push interval: no news is current data.
      live ? 'live: current (the server pushes each change)' : `as of ${clock(asOf)} (${ago(asOf)})`,
      `last change ${clock(asOf)} (${ago(asOf)})`,
      row ? `newest sample ${ago(row.newest_sample)}` : '',
      this._stale ? 'connection lost: reconnecting…' : '',
      'Click to open the clusternb dashboard'
    ];
    this.node.title = lines.filter(Boolean).join('\n');
  }

  private _connection: ClusterConnection;
  private _handle: IHandle;
  private _fields: StatusField[];
  private _dot: HTMLSpanElement;
  private _text: HTMLSpanElement;
  private _key = '';
  private _stale = false;
  private _shown = { text: '', title: '', health: '' };
}
