/* Progressive enhancements for the portal: a copy button for one-time secrets. Pages work
   without this file; it must never fetch anything or hold page logic. */
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
