/**
 * The extension's settings (schema/plugin.json), read from Lab's settings registry, with their defaults
 * when the registry is missing (a shell without it) or a value is invalid.
 */

import { ISettingRegistry } from '@jupyterlab/settingregistry';

export type NotificationLevel = 'off' | 'critical' | 'warning';
export type StatusField = 'health' | 'nodes' | 'cpu' | 'memory' | 'alerts';

export interface IClusterSettings {
  /** Seconds between two local re-writes of the sidebar's ages ("last change 12 s ago"). */
  refreshInterval: number;
  /** Which alerts become Lab notifications. */
  notifications: NotificationLevel;
  /** What the status bar item shows, in order. */
  statusBarFields: StatusField[];
}

export const DEFAULTS: IClusterSettings = {
  refreshInterval: 1,
  notifications: 'warning',
  statusBarFields: ['health', 'nodes', 'cpu', 'memory']
};

const LEVELS: NotificationLevel[] = ['off', 'critical', 'warning'];
const FIELDS: StatusField[] = ['health', 'nodes', 'cpu', 'memory', 'alerts'];

/** The settings as the registry holds them, each value checked, the default where one is not valid. */
export function readSettings(settings: ISettingRegistry.ISettings | null): IClusterSettings {
  if (!settings) {
    return { ...DEFAULTS };
  }
  const refresh = settings.get('refreshInterval').composite;
  const level = settings.get('notifications').composite;
  const fields = settings.get('statusBarFields').composite;
  return {
    refreshInterval:
      typeof refresh === 'number' && refresh >= 0.2 && refresh <= 3600 ? refresh : DEFAULTS.refreshInterval,
    notifications: LEVELS.includes(level as NotificationLevel)
      ? (level as NotificationLevel)
      : DEFAULTS.notifications,
    statusBarFields: Array.isArray(fields)
      ? (fields.filter(f => FIELDS.includes(f as StatusField)) as StatusField[])
      : DEFAULTS.statusBarFields
  };
}
