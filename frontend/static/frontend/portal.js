/* Progressive enhancements for the portal: a copy button for one-time secrets, times in the
   reader's zone, "Go back" on error pages. Pages work without this file; it must never fetch
   anything or hold page logic. */
"use strict";
document.addEventListener("click", (event) => {
  const button = event.target.closest("[data-copy-target]");
  if (!button) return;
  const field = document.getElementById(button.dataset.copyTarget);
  const status = document.getElementById("copy-status");
  const say = (text) => { if (status) status.textContent = text; };
  field.select();
  if (navigator.clipboard && window.isSecureContext) {
    navigator.clipboard.writeText(field.value).then(
      () => say("Copied to the clipboard."),
      () => say("Select the text and press Ctrl+C to copy."),
    );
  } else {
    say("Selected: press Ctrl+C (⌘C on a Mac) to copy.");
  }
});

/* "Go back" buttons of the error pages (hidden without JavaScript, which they need). */
document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("[data-history-back]").forEach((button) => {
    if (window.history.length < 2) return;
    button.hidden = false;
    button.addEventListener("click", () => window.history.back());
  });
});

/* Times: the server writes <time class="when" datetime="…Z">YYYY-MM-DD HH:MM UTC</time>; here each
   one is rewritten to the reader's time zone with a relative form ("5 min ago · 2026-12-02 19:04
   CET"), the absolute UTC time kept in its title. Again every minute, and in whatever HTMX swaps
   in. Intl only: no library. */
(() => {
  const locale = navigator.language || "en";
  const relative = typeof Intl.RelativeTimeFormat === "function"
    ? new Intl.RelativeTimeFormat(locale, { numeric: "auto", style: "short" })
    : null;
  const absolute = new Intl.DateTimeFormat("en-CA", {
    year: "numeric", month: "2-digit", day: "2-digit",
    hour: "2-digit", minute: "2-digit", hourCycle: "h23",
  });
  // The zone's name as the reader's locale says it ("CET" rather than "GMT+1" where it can).
  let zone;
  try {
    zone = new Intl.DateTimeFormat(locale, { timeZoneName: "short" });
  } catch (error) {
    zone = new Intl.DateTimeFormat("en", { timeZoneName: "short" });
  }
  const UNITS = [
    ["year", 365 * 24 * 3600], ["month", 30 * 24 * 3600], ["week", 7 * 24 * 3600],
    ["day", 24 * 3600], ["hour", 3600], ["minute", 60], ["second", 1],
  ];

  const local = (date) => {
    const part = {};
    absolute.formatToParts(date).forEach(({ type, value }) => { part[type] = value; });
    const name = zone.formatToParts(date).find(({ type }) => type === "timeZoneName");
    return `${part.year}-${part.month}-${part.day} ${part.hour}:${part.minute} ${name ? name.value : ""}`.trim();
  };

  const ago = (date, now) => {
    if (!relative) return "";
    const seconds = (date.getTime() - now) / 1000;
    if (Math.abs(seconds) < 45) return relative.format(0, "second");
    for (const [unit, size] of UNITS) {
      if (Math.abs(seconds) >= size || unit === "second") {
        return relative.format(Math.round(seconds / size), unit);
      }
    }
    return "";
  };

  const render = (root) => {
    const now = Date.now();
    const scope = root && root.querySelectorAll ? root : document;
    const found = Array.from(scope.querySelectorAll("time.when"));
    if (scope.matches && scope.matches("time.when")) found.push(scope);
    found.forEach((el) => {
      const date = new Date(el.getAttribute("datetime"));
      if (Number.isNaN(date.getTime())) return;
      if (!el.dataset.utc) el.dataset.utc = el.textContent.trim();
      const when = local(date);
      const rel = ago(date, now);
      el.textContent = rel ? `${rel} · ${when}` : when;
      el.title = `${when} (${el.dataset.utc})`;
    });
  };

  document.addEventListener("DOMContentLoaded", () => render(document));
  document.addEventListener("htmx:load", (event) => render(event.target));
  document.addEventListener("htmx:afterSwap", (event) => render(event.target));
  window.setInterval(() => render(document), 60 * 1000);
})();
