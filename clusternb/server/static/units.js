// clusternb units for the dashboard: the steps of clusternb/units.py, run in the browser on the convention that
// module serves with the page (units.convention(): unit names, bases, decimals, dash), so one node reads the same
// here as in the CLI and the panels and no unit, base or decimal count is written twice. The e2e test
// tests/e2e/test_dashboard_text.py compares the two value for value in Chromium.
(function () {
  "use strict";
  const C = JSON.parse(document.getElementById("units-convention").textContent);
  const { DASH, BYTE_UNITS, BYTE_BASE, RATE_UNITS, RATE_BASE, DECIMALS } = C;

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

  const humanBytes = (v) => scaled(v, BYTE_BASE, BYTE_UNITS); // units.human_bytes
  const humanRate = (v) => scaled(v, RATE_BASE, RATE_UNITS); // units.human_rate
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
