// Postgate console: the only script of our own. Pages work without it; it adds copy buttons.
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
  document.documentElement.classList.add("js");
})();
