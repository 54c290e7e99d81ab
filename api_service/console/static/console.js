// Postgate console: the only script of our own. Pages work without it; it adds copy buttons and
// fills the template editor's preview frame.
(function () {
  "use strict";
  function copied(button, ok) {
    var label = button.textContent;
    button.textContent = ok ? "Copied" : "Press Ctrl+C";
    button.classList.add(ok ? "copied" : "copy-failed");
    setTimeout(function () {
      button.textContent = label;
      button.classList.remove("copied", "copy-failed");
    }, 1500);
  }
  function fallback(text) {
    var area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.className = "offscreen";
    document.body.appendChild(area);
    area.select();
    var ok = false;
    try { ok = document.execCommand("copy"); } catch (e) { ok = false; }
    document.body.removeChild(area);
    return ok;
  }
  document.addEventListener("click", function (event) {
    var button = event.target.closest ? event.target.closest("button[data-copy]") : null;
    if (!button) { return; }
    var text = button.getAttribute("data-copy") || "";
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(function () { copied(button, true); }, function () { copied(button, fallback(text)); });
    } else {
      copied(button, fallback(text));
    }
  });
  // Template editor: after htmx refreshed the live check, post the same form into the sandboxed
  // HTML frame (a new frame each time, so no history entry is added). The panel names the button.
  document.addEventListener("htmx:afterSettle", function () {
    var panel = document.querySelector("[data-preview-submit]");
    if (!panel) { return; }
    var button = document.getElementById(panel.getAttribute("data-preview-submit"));
    panel.removeAttribute("data-preview-submit");
    if (button && button.form && button.form.requestSubmit) { button.form.requestSubmit(button); }
  });
  document.documentElement.classList.add("js");
})();
