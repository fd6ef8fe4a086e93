/* The release page's live part (#release-live) is replaced every 3 s by HTMX polling. This keeps
   what a person was doing there across a refresh: the <details> they opened stay open, and the
   control they had focused (a link, a summary) gets the focus back, so a keyboard user is not
   thrown to the top of the page. The page works without this file; it must never fetch. */
"use strict";
(() => {
  const LIVE = "release-live";
  const FOCUSABLE = "a[href], summary, button, [tabindex]";
  let kept = null;

  document.addEventListener("htmx:beforeSwap", (event) => {
    const live = event.detail.target;
    if (!live || live.id !== LIVE) return;
    const focusables = [...live.querySelectorAll(FOCUSABLE)];
    const active = document.activeElement;
    kept = {
      open: [...live.querySelectorAll("details[open][id]")].map((d) => d.id),
      focusId: active && live.contains(active) ? active.id : "",
      focusIndex: active && live.contains(active) ? focusables.indexOf(active) : -1,
    };
  });

  document.addEventListener("htmx:afterSwap", () => {
    const live = document.getElementById(LIVE);
    if (!kept || !live) return;
    for (const id of kept.open) {
      const details = document.getElementById(id);
      if (details) details.open = true;
    }
    let target = kept.focusId ? document.getElementById(kept.focusId) : null;
    if (!target && kept.focusIndex >= 0) {
      target = live.querySelectorAll(FOCUSABLE)[kept.focusIndex] || null;
    }
    if (target) target.focus({ preventScroll: true });
    kept = null;
  });
})();
