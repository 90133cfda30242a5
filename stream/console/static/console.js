// The console's only script: live regions refreshed on Server-Sent Events, action forms sent to the JSON API.
// No framework and no build: the page works without it (links, filters), this makes it live and lets it act.
(function () {
  "use strict";
  var busy = false, again = false;

  function refresh() {
    if (busy) { again = true; return; }
    var regions = document.querySelectorAll("[data-live]");
    if (!regions.length) { return; }
    busy = true;
    var jobs = Array.prototype.map.call(regions, function (region) {
      return fetch(region.getAttribute("data-live"), {credentials: "same-origin"})
        .then(function (r) { return r.ok ? r.text() : null; })
        .then(function (html) { if (html !== null) { region.innerHTML = html; } });
    });
    Promise.all(jobs).catch(function () {}).then(function () {
      busy = false;
      if (again) { again = false; refresh(); }
    });
  }

  // One EventSource per shown page, closed when the page is hidden away (navigation, back-forward cache): a browser
  // opens at most 6 connections to one worker, and the streams of pages kept in its back-forward cache held them all,
  // so the next sign-in on that worker waited a minute for a free one.
  var source = null;

  function listen() {
    if (!window.EventSource || source) { return; }
    var live = document.getElementById("live");
    var first = true;
    source = new EventSource("/ui/events");
    source.onmessage = function (event) {
      var doc = JSON.parse(event.data), seen = document.body.getAttribute("data-version");
      var badge = document.getElementById("queue-size");
      document.body.setAttribute("data-version", String(doc.version));
      if (badge) { badge.textContent = String(doc.queue); }
      if (live) { live.className = "live on"; }
      if (first && String(doc.version) === seen) { first = false; return; }
      first = false;
      refresh();
    };
    source.onerror = function () { if (live) { live.className = "live"; } };
  }

  function quiet() {
    if (source) { source.close(); source = null; }
    var live = document.getElementById("live");
    if (live) { live.className = "live"; }
  }

  function bodyOf(form) {
    var kind = form.getAttribute("data-kind"), body = {};
    Array.prototype.forEach.call(form.elements, function (field) {
      if (field.name && field.value !== "") { body[field.name] = field.value; }
    });
    if (kind === "silence") {
      var minutes = Number(body.minutes || 60);
      return {matchers: [{name: "incident_id", value: form.getAttribute("data-incident")}],
              endsAt: new Date(Date.now() + minutes * 60000).toISOString(), comment: body.comment || ""};
    }
    return body;
  }

  function say(text, ok) {
    var out = document.getElementById("result");
    if (out) { out.textContent = text; out.className = "result " + (ok ? "ok" : "error"); }
  }

  function send(form) {
    fetch(form.getAttribute("data-action"), {
      method: "POST", credentials: "same-origin",
      headers: {"Content-Type": "application/json", "Accept": "application/json"},
      body: JSON.stringify(bodyOf(form))
    }).then(function (r) {
      return r.text().then(function (text) {
        var doc = {};
        try { doc = JSON.parse(text); } catch (e) { doc = {detail: text}; }
        if (r.ok) { say("done (" + r.status + ")", true); refresh(); }
        else { say("refused (" + r.status + "): " + (doc.detail || doc.title || text), false); }
      });
    }).catch(function (e) { say("failed: " + e, false); });
  }

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!form.getAttribute || !form.getAttribute("data-action")) { return; }
    event.preventDefault();
    send(form);
  });
  document.addEventListener("DOMContentLoaded", listen);
  window.addEventListener("pagehide", quiet);
  window.addEventListener("pageshow", function (event) { if (event.persisted) { listen(); refresh(); } });
}());
