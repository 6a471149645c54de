/**
 * Small text helpers shared by the status bar, the sidebar and the notifications. Every text from a node
 * goes into the page through `textContent` (see `el`), never as HTML.
 */

/** The dash the rest of clusternb writes for a missing value (clusternb/units.py). */
export const DASH = '—'; // clusternb.units.DASH: the one dash of every HTML face

export function missing(value: unknown): boolean {
  return typeof value !== 'number' || !Number.isFinite(value);
}

/** A percentage, compact: "42 %" (the status bar has little room; the dashboard shows decimals). */
export function percent(value: unknown, decimals = 0): string {
  return missing(value) ? DASH : `${(value as number).toFixed(decimals)} %`;
}

/** IEC bytes as clusternb.units.human_bytes writes them: "1023 B", "1.0 KiB", "23.5 GiB". */
export function bytes(value: unknown): string {
  if (missing(value)) {
    return DASH;
  }
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let v = value as number;
  let i = 0;
  while (Math.abs(v) >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  let shown = v.toFixed(i === 0 ? 0 : 1);
  if (Math.abs(Number(shown)) >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
    shown = v.toFixed(1);
  }
  return `${shown} ${units[i]}`;
}

/** Seconds since an ISO time, as a person says it, floored: "12 s ago", "3 min ago", "2 h ago". */
export function ago(iso: string | undefined, now = Date.now()): string {
  const ms = iso ? Date.parse(iso) : NaN;
  if (!Number.isFinite(ms)) {
    return DASH;
  }
  const s = Math.max(0, (now - ms) / 1000);
  if (s < 60) {
    return `${Math.floor(s)} s ago`;
  }
  if (s < 3600) {
    return `${Math.floor(s / 60)} min ago`;
  }
  return `${Math.floor(s / 3600)} h ago`;
}

/** "2024-05-01 12:00:03 UTC" from ISO text, as clusternb.units.clock writes it. */
export function clock(iso: string | undefined): string {
  const ms = iso ? Date.parse(iso) : NaN;
  if (!Number.isFinite(ms)) {
    return DASH;
  }
  return new Date(ms).toISOString().slice(0, 19).replace('T', ' ') + ' UTC';
}

/** A value as text, whatever it is (null and undefined as the dash). */
export function text(value: unknown): string {
  return value === null || value === undefined ? DASH : String(value);
}

/** A new element with a class and text; the text is set as text, never parsed as HTML. */
export function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  className = '',
  content?: string
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  if (className) {
    node.className = className;
  }
  if (content !== undefined) {
    node.textContent = content;
  }
  return node;
}
