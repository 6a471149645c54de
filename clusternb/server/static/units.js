// clusternb units for the dashboard: a line-for-line mirror of clusternb/units.py, so that one node reads the
// same in the browser as in the CLI and the panels. IEC for bytes (1024), SI for rates (1000), one decimal
// after a scaled unit and after a percent, one dash for a missing value. Change both files together; the
// e2e test tests/e2e/test_dashboard_text.py compares them value for value in Chromium.
(function () {
  "use strict";
  const DASH = "—"; // units.DASH
  const BYTE_UNITS = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"]; // units.BYTE_UNITS
  const RATE_UNITS = ["B/s", "kB/s", "MB/s", "GB/s", "TB/s", "PB/s"]; // units.RATE_UNITS
  const DECIMALS = 1; // units.DECIMALS

  // units.missing: null/undefined (JSON null is how NaN, NA and NaT arrive), anything not a finite number.
  const missing = (v) => v == null || typeof v !== "number" || !Number.isFinite(v);

  // units.fixed: toFixed is the rounding units.fixed reproduces (half away from zero, exact binary value).
  const fixed = (v, decimals) => v.toFixed(decimals);

  // units.scaled
  function scaled(v, base, units) {
    if (missing(v)) return DASH;
    let i = 0;
    while (Math.abs(v) >= base && i < units.length - 1) { v /= base; i++; }
    let text = fixed(v, i === 0 ? 0 : DECIMALS);
    if (Math.abs(Number(text)) >= base && i < units.length - 1) { v /= base; i++; text = fixed(v, DECIMALS); }
    return `${text} ${units[i]}`;
  }

  const humanBytes = (v) => scaled(v, 1024, BYTE_UNITS); // units.human_bytes
  const humanRate = (v) => scaled(v, 1000, RATE_UNITS); // units.human_rate
  const percent = (v) => (missing(v) ? DASH : `${fixed(v, DECIMALS)} %`); // units.percent
  const number = (v, decimals = 2) => (missing(v) ? DASH : fixed(v, decimals)); // units.number
  const seconds = (v) => (missing(v) ? DASH : `${fixed(v, DECIMALS)} s`); // units.seconds
  const noun = (n, singular, plural) => (n === 1 ? singular : plural || singular + "s"); // units.noun
  const count = (n, singular, plural) => `${n} ${noun(n, singular, plural)}`; // units.count

  // units.clock: ISO text from the server (always UTC) as "YYYY-MM-DD HH:MM:SS UTC".
  function clock(iso) {
    const ms = iso == null ? NaN : Date.parse(iso);
    if (!Number.isFinite(ms)) return DASH;
    return new Date(ms).toISOString().slice(0, 19).replace("T", " ") + " UTC";
  }

  window.clusternbUnits = Object.freeze({
    DASH, BYTE_UNITS, RATE_UNITS, DECIMALS, missing, fixed, humanBytes, humanRate, percent, number, seconds, noun, count, clock,
  });
})();
