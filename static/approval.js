// While another device may approve this login, ask the server (a small
// JSON answer, one indexed read) whether anything changed; when it did,
// load the login page again, which goes on or says why not. Without
// JavaScript the "continue" button does the same.
(function () {
  var el = document.querySelector('[data-poll]');
  if (!el || !window.fetch) return;
  var url = el.getAttribute('data-poll'), next = el.getAttribute('data-continue');
  var stopAt = Date.now() + 30 * 60 * 1000; // a login page left open does not poll forever
  function poll() {
    if (Date.now() > stopAt) return;
    fetch(url, { credentials: 'same-origin', cache: 'no-store' })
      .then(function (r) { return r.ok ? r.json() : { state: 'waiting' }; })
      .then(function (s) {
        if (s.state === 'changed') { window.location.replace(next); } else { setTimeout(poll, 2000); }
      })
      .catch(function () { setTimeout(poll, 5000); });
  }
  setTimeout(poll, 2000);
})();
