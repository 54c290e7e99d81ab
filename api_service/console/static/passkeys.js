// Postgate console: WebAuthn ceremonies for the passkey buttons (registration on the two-factor
// page, authentication on the second sign-in step). The server sends the options as JSON with
// base64url fields; the browser API wants ArrayBuffers, and the answer goes back as JSON.
(function () {
  "use strict";
  function toBuffer(value) {
    var text = value.replace(/-/g, "+").replace(/_/g, "/");
    while (text.length % 4) { text += "="; }
    var raw = atob(text), bytes = new Uint8Array(raw.length);
    for (var i = 0; i < raw.length; i++) { bytes[i] = raw.charCodeAt(i); }
    return bytes.buffer;
  }
  function toText(buffer) {
    var bytes = new Uint8Array(buffer), raw = "";
    for (var i = 0; i < bytes.length; i++) { raw += String.fromCharCode(bytes[i]); }
    return btoa(raw).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }
  function post(url, csrf, body) {
    return fetch(url, {
      method: "POST", credentials: "same-origin",
      headers: {"Content-Type": "application/json", "X-CSRF-Token": csrf},
      body: JSON.stringify(body || {})
    }).then(function (r) {
      return r.json().then(function (data) {
        if (!r.ok) { throw new Error(data.error || "The request failed."); }
        return data;
      });
    });
  }
  function show(box, error) {
    var out = box.parentNode.querySelector("[data-passkey-error]");
    if (out) { out.textContent = error.message || String(error); }
  }
  function descriptors(list) {
    return (list || []).map(function (c) { return {type: c.type, id: toBuffer(c.id), transports: c.transports}; });
  }
  function register(box) {
    var csrf = box.getAttribute("data-csrf");
    var name = (box.querySelector("input[name=passkey_name]") || {}).value || "Passkey";
    post("/console/account/two-factor/passkeys/options", csrf).then(function (o) {
      o.challenge = toBuffer(o.challenge);
      o.user.id = toBuffer(o.user.id);
      o.excludeCredentials = descriptors(o.excludeCredentials);
      return navigator.credentials.create({publicKey: o});
    }).then(function (c) {
      return post("/console/account/two-factor/passkeys", csrf, {name: name, credential: {
        id: c.id, rawId: toText(c.rawId), type: c.type,
        response: {clientDataJSON: toText(c.response.clientDataJSON), attestationObject: toText(c.response.attestationObject)}
      }});
    }).then(function (done) { window.location.assign(done.next); }, function (e) { show(box, e); });
  }
  function authenticate(box) {
    var csrf = box.getAttribute("data-csrf");
    post("/console/sign-in/second-factor/passkey/options", csrf).then(function (o) {
      o.challenge = toBuffer(o.challenge);
      o.allowCredentials = descriptors(o.allowCredentials);
      return navigator.credentials.get({publicKey: o});
    }).then(function (c) {
      return post("/console/sign-in/second-factor/passkey", csrf, {next: box.getAttribute("data-next"), credential: {
        id: c.id, rawId: toText(c.rawId), type: c.type,
        response: {
          clientDataJSON: toText(c.response.clientDataJSON), authenticatorData: toText(c.response.authenticatorData),
          signature: toText(c.response.signature), userHandle: c.response.userHandle ? toText(c.response.userHandle) : null
        }
      }});
    }).then(function (done) { window.location.assign(done.next); }, function (e) { show(box, e); });
  }
  document.addEventListener("click", function (event) {
    var add = event.target.closest ? event.target.closest("[data-passkey-add]") : null;
    if (add) { register(add.closest("[data-passkey-register]")); return; }
    var use = event.target.closest ? event.target.closest("[data-passkey-use]") : null;
    if (use) { authenticate(use.closest("[data-passkey-sign-in]")); }
  });
}());
