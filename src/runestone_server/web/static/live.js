// The approvals inbox, live: every few seconds re-fetch the rows (rendered and escaped by
// the server) and swap them in. No other script runs on any page.
(function () {
  "use strict";
  var body = document.getElementById("inbox-rows");
  if (!body || !body.dataset.live) { return; }
  var count = document.getElementById("live-count");
  var every = 2000;
  function tick() {
    fetch(body.dataset.live, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (response) {
        if (response.redirected || !response.ok) { throw new Error("signed out"); }
        return response.text();
      })
      .then(function (html) {
        if (html !== body.dataset.last) {
          body.dataset.last = html;
          body.innerHTML = html;
          if (count) { count.textContent = String(body.querySelectorAll("tr[data-id]").length); }
        }
        window.setTimeout(tick, every);
      })
      .catch(function () { window.setTimeout(tick, every * 5); });
  }
  window.setTimeout(tick, every);
}());
