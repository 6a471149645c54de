/**
 * The left sidebar: the nodes with their status (a click opens that node's charts in the dashboard tab), the
 * active alerts, each with an Acknowledge button that calls the REST API, and the Jupyter kernels of the
 * cluster (path, node, state, memory, CPU; largest memory first, as the server sends them). Every text from a
 * node is set with `textContent`; sections are rebuilt only when their topic's data changed, ages tick locally.
 *
 * The workers and kernels topics (whole tables, resent on every change of any row) are followed only while the
 * sidebar is shown: a tab with the sidebar closed receives only the status and alerts topics.
 */

import { Message } from '@lumino/messaging';
import { Widget } from '@lumino/widgets';

import { ClusterConnection, IHandle, IMessage, ITopicBody } from './connection';
import { acknowledge } from './notifications';
import { DASH, ago, bytes, el, percent, text } from './format';
import { IClusterSettings } from './settings';

/** Rows drawn at most: a sidebar of 5,000 nodes shows nothing; the dashboard's filter finds the rest. */
const MAX_NODES = 200;
/** Kernels drawn at most (the largest by memory come first); "… N more" says how many the dashboard adds. */
const MAX_KERNELS = 20;

export class ClusterSidebar extends Widget {
  constructor(connection: ClusterConnection, openNode: (node?: string) => void, settings: IClusterSettings) {
    super();
    this._connection = connection;
    this._openNode = openNode;
    this.id = 'clusternb-sidebar';
    this.addClass('clusternb-Sidebar');
    this.title.caption = 'clusternb: nodes and alerts';

    const head = el('div', 'clusternb-Sidebar-head');
    this._health = el('span', 'clusternb-badge', DASH);
    this._summary = el('span', 'clusternb-Sidebar-summary', 'waiting for data…');
    const open = el('button', 'jp-Button jp-mod-styled jp-mod-accept clusternb-open', 'Open dashboard');
    open.addEventListener('click', () => this._openNode());
    head.append(el('span', 'clusternb-Sidebar-title', 'clusternb'), this._health, this._summary, open);

    this._alertsHead = el('h3', 'clusternb-Sidebar-section', 'Active alerts');
    this._alerts = el('ul', 'clusternb-alerts');
    this._nodesHead = el('h3', 'clusternb-Sidebar-section', 'Nodes');
    this._nodes = el('table', 'clusternb-nodes');
    this._note = el('div', 'clusternb-note');
    this._kernelsHead = el('h3', 'clusternb-Sidebar-section', 'Kernels');
    this._kernels = el('table', 'clusternb-nodes clusternb-kernels');
    this._kernelsNote = el('div', 'clusternb-note');
    this._age = el('div', 'clusternb-age');
    this.node.append(
      head,
      this._alertsHead,
      this._alerts,
      this._nodesHead,
      this._nodes,
      this._note,
      this._kernelsHead,
      this._kernels,
      this._kernelsNote,
      this._age
    );

    this._handles = [
      connection.want('status', m => this._on(m, b => this._renderStatus(b))),
      connection.want('alerts', m => this._on(m, b => this._renderAlerts(b)))
    ];
    this.configure(settings);
  }

  protected onAfterShow(msg: Message): void {
    super.onAfterShow(msg);
    this._workers ??= this._connection.want('workers', m => this._on(m, b => this._renderNodes(b)));
    this._kernelsWant ??= this._connection.want('kernels', m => this._on(m, b => this._renderKernels(b)));
  }

  protected onAfterHide(msg: Message): void {
    super.onAfterHide(msg);
    this._workers?.dispose();
    this._workers = null;
    this._kernelsWant?.dispose();
    this._kernelsWant = null;
  }

  configure(settings: IClusterSettings): void {
    window.clearInterval(this._ticker);
    this._ticker = window.setInterval(() => this._tick(), 1000 * settings.refreshInterval);
  }

  dispose(): void {
    window.clearInterval(this._ticker);
    this._handles.forEach(h => h.dispose());
    this._workers?.dispose();
    this._kernelsWant?.dispose();
    super.dispose();
  }

  private _on(message: IMessage, render: (body: ITopicBody) => void): void {
    if (message.type === 'state' && message.body) {
      render(message.body);
      this._tick();
    } else if (message.type === 'disabled') {
      this._summary.textContent = 'the clusternb server extension is not enabled on this server';
    }
  }

  private _renderStatus(body: ITopicBody): void {
    const row = body.data[0];
    if (!row) {
      return;
    }
    const health = text(row.health);
    this._health.textContent = health;
    this._health.className = `clusternb-badge clusternb-health-${health}`;
    this._summary.textContent =
      `${text(row.nodes_online)} online of ${text(row.nodes_total)} · ` +
      `CPU ${percent(row.cpu_percent)} · Mem ${percent(row.mem_used_percent)}`;
  }

  private _renderNodes(body: ITopicBody): void {
    const rows = body.data;
    this._nodesHead.textContent = `Nodes (${rows.length})`;
    const table = this._nodes;
    table.replaceChildren();
    const tbody = headed(table, ['Node', 'Status', 'CPU', 'Mem']);
    for (const row of rows.slice(0, MAX_NODES)) {
      const tr = tbody.insertRow();
      tr.className = 'clusternb-node';
      tr.dataset.node = text(row.node);
      const name = el('button', 'clusternb-link', text(row.node));
      name.title = `Open the charts of ${text(row.node)} in the dashboard`;
      name.addEventListener('click', () => this._openNode(String(row.node)));
      const cell = tr.insertCell();
      cell.append(name);
      const status = el('span', `clusternb-badge clusternb-status-${text(row.status)}`, text(row.status));
      tr.insertCell().append(status);
      tr.insertCell().textContent = percent(row.cpu_percent);
      tr.insertCell().textContent = percent(row.mem_used_percent);
    }
    this._note.textContent =
      rows.length > MAX_NODES ? `Showing ${MAX_NODES} of ${rows.length} nodes; the dashboard lists all.` : '';
  }

  private _renderKernels(body: ITopicBody): void {
    const rows = body.data;
    this._kernelsHead.textContent = `Kernels (${rows.length})`;
    const table = this._kernels;
    table.replaceChildren();
    if (rows.length === 0) {
      this._kernelsNote.textContent = 'No kernels reported (servers with the extension publish theirs)';
      return;
    }
    const tbody = headed(table, ['Notebook', 'Node', 'State', 'Mem', 'CPU']);
    for (const row of rows.slice(0, MAX_KERNELS)) {
      const tr = tbody.insertRow();
      tr.className = 'clusternb-kernel';
      tr.dataset.kernelId = text(row.kernel_id);
      const hidden = row.path === null || row.path === undefined;
      const shown = hidden ? (row.own === false ? "another user's" : DASH) : text(row.path);
      const path = el('span', 'clusternb-kernel-path', shown);
      path.title = hidden ? `kernel ${text(row.kernel_id)}` : `${text(row.path)} (kernel ${text(row.kernel_id)})`;
      tr.insertCell().append(path);
      tr.insertCell().textContent = text(row.node);
      tr.insertCell().textContent = text(row.execution_state);
      tr.insertCell().textContent = bytes(row.pss_bytes);
      tr.insertCell().textContent = percent(row.cpu_percent);
    }
    this._kernelsNote.textContent =
      rows.length > MAX_KERNELS ? `… ${rows.length - MAX_KERNELS} more; the dashboard lists all.` : '';
  }

  private _renderAlerts(body: ITopicBody): void {
    const list = this._alerts;
    list.replaceChildren();
    this._alertsHead.textContent = `Active alerts (${body.data.length})`;
    if (body.data.length === 0) {
      list.append(el('li', 'clusternb-empty', 'No active alerts'));
    }
    for (const alert of body.data) {
      const item = el('li', 'clusternb-alert');
      item.dataset.alertId = text(alert.alert_id);
      const top = el('div', 'clusternb-alert-top');
      top.append(
        el('span', `clusternb-badge clusternb-severity-${text(alert.severity)}`, text(alert.severity)),
        el('span', `clusternb-badge clusternb-state-${text(alert.state)}`, text(alert.state)),
        el('span', 'clusternb-alert-node', text(alert.node))
      );
      const since = el('span', 'clusternb-since', ago(alert.started_at));
      since.dataset.ago = text(alert.started_at);
      top.append(since);
      item.append(top, el('div', 'clusternb-alert-message', text(alert.message)));
      if (alert.acknowledged) {
        item.append(el('div', 'clusternb-acked', 'acknowledged'));
      } else {
        const button = el('button', 'jp-Button jp-mod-styled jp-mod-warn clusternb-ack', 'Acknowledge');
        button.addEventListener('click', () => {
          button.disabled = true;
          void acknowledge(this._connection, String(alert.alert_id)).then(ok => {
            button.textContent = ok ? 'acknowledged' : 'Acknowledge (failed: retry)';
            button.disabled = ok;
          });
        });
        item.append(button);
      }
      list.append(item);
    }
  }

  /** Ages tick locally: no data moves for them. */
  private _tick(): void {
    for (const node of this.node.querySelectorAll<HTMLElement>('[data-ago]')) {
      node.textContent = ago(node.dataset.ago);
    }
    const asOf = this._connection.asOf('workers') ?? this._connection.asOf('status');
    this._age.textContent = !asOf
      ? ''
      : this._connection.state === 'live'
        ? `live · last change ${ago(asOf)}`
        : `as of ${ago(asOf)} · reconnecting…`;
  }

  private _connection: ClusterConnection;
  private _openNode: (node?: string) => void;
  private _handles: IHandle[];
  private _workers: IHandle | null = null;
  private _kernelsWant: IHandle | null = null;
  private _health: HTMLSpanElement;
  private _summary: HTMLSpanElement;
  private _alertsHead: HTMLHeadingElement;
  private _alerts: HTMLUListElement;
  private _nodesHead: HTMLHeadingElement;
  private _nodes: HTMLTableElement;
  private _note: HTMLDivElement;
  private _kernelsHead: HTMLHeadingElement;
  private _kernels: HTMLTableElement;
  private _kernelsNote: HTMLDivElement;
  private _age: HTMLDivElement;
  private _ticker = 0;
}

/** `table`'s header row of `labels`, and its (new, empty) body. */
function headed(table: HTMLTableElement, labels: string[]): HTMLTableSectionElement {
  const head = table.createTHead().insertRow();
  for (const label of labels) {
    head.append(el('th', '', label));
  }
  return table.createTBody();
}
