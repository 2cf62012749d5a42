// keycloak-js session status iframe. The app posts "clientId sessionId";
// the answer is "unchanged" while the browser's session (the
// LATCHKEY_SESSION cookie, which holds only the public sid of its tokens)
// is the one the app's tokens came from, "changed" otherwise, and "error"
// for an origin the client does not list in its webOrigins.
(function () {
  var initURL = document.documentElement.dataset.init;
  var allowed = {};

  function sessionCookie() {
    var parts = document.cookie.split("; ");
    for (var i = 0; i < parts.length; i++) {
      if (parts[i].indexOf("LATCHKEY_SESSION=") === 0) {
        return decodeURIComponent(parts[i].substring("LATCHKEY_SESSION=".length));
      }
    }
    return "";
  }

  function originAllowed(clientId, origin) {
    var key = clientId + " " + origin;
    if (!(key in allowed)) {
      allowed[key] = fetch(initURL + "?client_id=" + encodeURIComponent(clientId) + "&origin=" + encodeURIComponent(origin), {
        credentials: "include"
      }).then(function (r) { return r.status === 204; }, function () { return false; });
    }
    return allowed[key];
  }

  window.addEventListener("message", function (event) {
    if (typeof event.data !== "string" || event.source === null) {
      return;
    }
    var parts = event.data.split(" ");
    var clientId = parts[0], sessionId = parts[1] || "";
    originAllowed(clientId, event.origin).then(function (ok) {
      if (!ok) {
        event.source.postMessage("error", event.origin);
        return;
      }
      event.source.postMessage(sessionCookie() === sessionId ? "unchanged" : "changed", event.origin);
    });
  }, false);
})();
