/**
 * The dashboard as a Lab tab: the server's own page (`{base_url}clusternb/`) in a same-origin iframe, so the
 * tab and the stand-alone page are one dashboard. The page finds this tab's shared connection at
 * `window.parent.clusternb.connection` and uses it instead of opening its own WebSocket (see dashboard.js);
 * it reads Lab's theme from the parent's `data-jp-theme-light`. A node's charts open as `#node=<name>`,
 * which the page turns into its filter.
 */

import { MainAreaWidget } from '@jupyterlab/apputils';
import { IFrame } from '@jupyterlab/ui-components';

import { ClusterConnection } from './connection';

export class DashboardPanel extends MainAreaWidget<IFrame> {
  constructor(connection: ClusterConnection, node?: string) {
    const content = new IFrame({
      sandbox: ['allow-scripts', 'allow-same-origin', 'allow-popups', 'allow-downloads'],
      referrerPolicy: 'same-origin'
    });
    super({ content });
    this._base = connection.dashboardUrl();
    this.id = `clusternb-dashboard-${++DashboardPanel.count}`;
    this.addClass('clusternb-Dashboard');
    this.title.label = 'clusternb dashboard';
    this.title.caption = 'clusternb: cluster dashboard';
    this.title.closable = true;
    this.showNode(node);
  }

  static count = 0;

  /** Show one node's charts (its name as the page's filter), or all nodes. */
  showNode(node?: string): void {
    const hash = node ? `#node=${encodeURIComponent(node)}` : '';
    const url = this._base + hash;
    if (!this.content.url) {
      this.content.url = url; // first load
      return;
    }
    const frame = this.content.node.querySelector('iframe');
    try {
      if (frame?.contentWindow) {
        frame.contentWindow.location.hash = hash; // no reload: the page listens to hashchange
        return;
      }
    } catch {
      // not same-origin after all: reload with the new address
    }
    this.content.url = url;
  }

  private _base: string;
}
