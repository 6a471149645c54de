/**
 * clusternb's JupyterLab face: a status bar item, a sidebar, the dashboard as a tab and alert notifications,
 * all fed by ONE WebSocket per browser tab (`ClusterConnection`), which the dashboard tabs' pages share
 * through `window.clusternb.connection`. Every shell token but the app is optional, so the extension also
 * loads where a shell lacks the status bar, launcher or palette (Notebook 7), and does nothing harmful where
 * the server extension is missing (one console line, see connection.ts).
 */

import { ILabShell, ILayoutRestorer, JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { ICommandPalette, WidgetTracker } from '@jupyterlab/apputils';
import { ILauncher } from '@jupyterlab/launcher';
import { ISettingRegistry } from '@jupyterlab/settingregistry';
import { IStatusBar } from '@jupyterlab/statusbar';
import { LabIcon } from '@jupyterlab/ui-components';

import { ClusterConnection } from './connection';
import { DashboardPanel } from './dashboard';
import { AlertNotifier } from './notifications';
import { DEFAULTS, IClusterSettings, readSettings } from './settings';
import { ClusterSidebar } from './sidebar';
import { StatusItem } from './status';

const PLUGIN_ID = 'clusternb-labextension:plugin';
export const OPEN_DASHBOARD = 'clusternb:open-dashboard';

const ICON_SVG =
  '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24" width="16"><g class="jp-icon3" fill="#616161">' +
  '<rect x="2" y="3" width="8" height="8" rx="1.5"/><rect x="14" y="3" width="8" height="8" rx="1.5"/>' +
  '<rect x="2" y="13" width="8" height="8" rx="1.5"/><rect x="14" y="13" width="8" height="8" rx="1.5"/></g></svg>';
export const clusterIcon = new LabIcon({ name: 'clusternb:cluster', svgstr: ICON_SVG });

/** What the page exposes for the dashboard iframes (same origin) and for tests. */
export interface IClusterGlobal {
  connection: ClusterConnection;
  notifier: AlertNotifier;
  status?: StatusItem;
}

declare global {
  interface Window {
    clusternb?: IClusterGlobal;
  }
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: PLUGIN_ID,
  description: 'clusternb: cluster health in the status bar, a sidebar, the dashboard tab and alert notifications.',
  autoStart: true,
  optional: [ISettingRegistry, IStatusBar, ILauncher, ICommandPalette, ILayoutRestorer, ILabShell],
  activate: async (
    app: JupyterFrontEnd,
    registry: ISettingRegistry | null,
    statusBar: IStatusBar | null,
    launcher: ILauncher | null,
    palette: ICommandPalette | null,
    restorer: ILayoutRestorer | null,
    labShell: ILabShell | null
  ) => {
    let settings: IClusterSettings = { ...DEFAULTS };
    let loaded: ISettingRegistry.ISettings | null = null;
    if (registry) {
      try {
        loaded = await registry.load(PLUGIN_ID);
        settings = readSettings(loaded);
      } catch (reason) {
        console.warn('clusternb: could not load settings; using the defaults', reason);
      }
    }

    const connection = new ClusterConnection();
    const tracker = new WidgetTracker<DashboardPanel>({ namespace: 'clusternb-dashboard' });

    const openDashboard = (node?: string): void => {
      if (!labShell) {
        // Notebook 7 and other single-document shells: the main area is the document, so the dashboard
        // opens as its own browser tab (the page then uses its own WebSocket).
        window.open(connection.dashboardUrl() + (node ? `#node=${encodeURIComponent(node)}` : ''), '_blank');
        return;
      }
      let panel = tracker.currentWidget;
      if (panel && !panel.isDisposed) {
        panel.showNode(node);
      } else {
        panel = new DashboardPanel(connection, node);
        void tracker.add(panel);
        app.shell.add(panel, 'main');
      }
      app.shell.activateById(panel.id);
    };

    app.commands.addCommand(OPEN_DASHBOARD, {
      label: args => (args.node ? `clusternb: Open dashboard for ${String(args.node)}` : 'clusternb: Open dashboard'),
      caption: 'Open the clusternb cluster dashboard in a tab',
      icon: args => (args.isPalette ? undefined : clusterIcon),
      execute: args => {
        openDashboard(typeof args.node === 'string' ? args.node : undefined);
      }
    });
    palette?.addItem({ command: OPEN_DASHBOARD, category: 'clusternb' });
    launcher?.add({ command: OPEN_DASHBOARD, category: 'Other', rank: 50 });
    if (restorer) {
      void restorer.restore(tracker, { command: OPEN_DASHBOARD, name: () => 'clusternb-dashboard' });
    }

    const open = (node?: string) => void app.commands.execute(OPEN_DASHBOARD, node ? { node } : {});
    const notifier = new AlertNotifier(connection, open, settings);
    const sidebar = new ClusterSidebar(connection, open, settings);
    sidebar.title.icon = clusterIcon;
    app.shell.add(sidebar, 'left', { rank: 800 });
    restorer?.add(sidebar, sidebar.id);

    let status: StatusItem | undefined;
    if (statusBar) {
      status = new StatusItem(connection, () => open(), settings);
      statusBar.registerStatusItem('clusternb:status', { item: status, align: 'left', rank: 10 });
    }
    window.clusternb = { connection, notifier, status };

    loaded?.changed.connect(() => {
      settings = readSettings(loaded);
      notifier.configure(settings);
      sidebar.configure(settings);
      status?.configure(settings);
    });
  }
};

export default plugin;
