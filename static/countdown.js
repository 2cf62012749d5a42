// Counts down "You can ask for a new link in N seconds" on the page that
// has it (data-countdown), in the page's language: data-singular and
// data-plural are the sentence for 1 and 2, rendered by the server.
(function () {
  var el = document.querySelector('[data-countdown]');
  if (!el) return;
  var n = parseInt(el.getAttribute('data-countdown'), 10);
  var rules = window.Intl && Intl.PluralRules ? new Intl.PluralRules(document.documentElement.lang) : null;
  var timer = setInterval(function () {
    n -= 1;
    if (n <= 0) { clearInterval(timer); el.hidden = true; return; }
    var one = rules ? rules.select(n) === 'one' : n === 1;
    el.textContent = one ? el.getAttribute('data-singular').replace('1', n) : el.getAttribute('data-plural').replace('2', n);
  }, 1000);
})();
