// engage dashboard: the live view polls a JSON endpoint and updates the page in place.
// No inline script (CSP), no dependencies; text goes in through textContent only.
(function () {
  "use strict";

  var INTERVAL_MS = 3000;

  function pct(value) {
    return value === null || value === undefined ? "–" : Math.round(value * 100) + "%";
  }

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function describe(event) {
    var what = event.type;
    if (event.type.indexOf("reaction.") === 0) {
      if (event.type === "reaction.vote") what = "voted " + event.choice;
      else if (event.type === "reaction.change") what = "changed " + event.previous + " → " + event.choice;
      else what = "withdrew " + event.previous;
      if (event.reason) what += " (" + event.reason.replace(/_/g, " ") + ")";
    } else if (event.type.indexOf("poll.") === 0) {
      var poll = event.question ? "“" + event.question + "”" : event.poll;
      if (event.type === "poll.vote" || event.type === "poll.change") what = "answered the poll " + poll;
      else if (event.type === "poll.withdraw") what = "withdrew an answer to the poll " + poll;
      else what = event.type.replace("poll.", "poll ") + " " + poll;
    } else if (event.type === "link.click") {
      what = "clicked a related link";
    }
    return what;
  }

  function startLive(status) {
    var source = status.getAttribute("data-source");
    var articleBase = status.getAttribute("data-article-base");
    var feed = document.getElementById("live-feed");
    var tbody = document.querySelector("#live-articles tbody");
    var seen = {};
    var first = true;
    var cursor = "";
    var shown = [];
    var impressions = 0;
    var filters = document.querySelectorAll("#live-filter input[type=checkbox]");

    function wanted(event) {
      return Array.prototype.every.call(filters, function (box) {
        return box.checked || event.type.indexOf(box.value) !== 0;
      });
    }

    function drawFeed() {
      var items = [];
      shown.filter(wanted).forEach(function (event) {
        var li = el("li");
        li.setAttribute("data-event", event.id);
        var time = el("time", "", event.time);
        var text = el("span");
        var link = el("a", "", event.title || event.article || event.poll || "");
        if (event.article) link.href = articleBase + encodeURIComponent(event.article);
        text.appendChild(link);
        text.appendChild(document.createTextNode(" " + describe(event)));
        li.appendChild(time);
        li.appendChild(text);
        if (!first && !seen[event.id]) li.className = "fresh";
        seen[event.id] = true;
        items.push(li);
      });
      feed.replaceChildren.apply(feed, items);
    }

    Array.prototype.forEach.call(filters, function (box) {
      box.addEventListener("change", drawFeed);
    });

    function render(data) {
      document.getElementById("live-total").textContent = data.totals.total;
      document.getElementById("live-hour").textContent = String(Math.round(data.totals.last_hour));
      document.getElementById("live-approval").textContent = pct(data.totals.approval);
      if (!first) impressions += data.impressions || 0;  // the first read is history
      document.getElementById("live-impressions").textContent = String(impressions);

      // The server sends only the events after our cursor: keep the newest 25 here.
      shown = data.events.concat(shown).slice(0, 25);
      cursor = data.cursor || cursor;
      drawFeed();

      var rows = data.articles.map(function (a) {
        var tr = el("tr");
        tr.setAttribute("data-article", a.id);
        var th = el("th");
        th.scope = "row";
        var link = el("a", "", a.title || a.id);
        link.href = articleBase + encodeURIComponent(a.id);
        th.appendChild(link);
        tr.appendChild(th);
        tr.appendChild(el("td", "num", String(a.total)));
        tr.appendChild(el("td", "num", pct(a.approval)));
        tr.appendChild(el("td", "num", String(Math.round(a.last_hour))));
        return tr;
      });
      tbody.replaceChildren.apply(tbody, rows);
      first = false;
    }

    function tick() {
      var url = cursor ? source + (source.indexOf("?") < 0 ? "?" : "&") + "since=" +
        encodeURIComponent(cursor) : source;
      fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (response) {
          if (response.status === 401) {
            window.location.reload();
            throw new Error("signed out");
          }
          if (!response.ok) throw new Error("HTTP " + response.status);
          return response.json();
        })
        .then(function (data) {
          render(data);
          status.textContent = "Live · updated " + new Date().toLocaleTimeString();
          status.className = "live-status ok";
        })
        .catch(function () {
          status.textContent = "Reconnecting…";
          status.className = "live-status";
        })
        .then(function () {
          window.setTimeout(tick, INTERVAL_MS);
        });
    }
    tick();
  }

  // Times are written in UTC; a reader with scripts sees their own time first.
  function localTimes() {
    var format = new Intl.DateTimeFormat(undefined, {dateStyle: "medium", timeStyle: "short"});
    Array.prototype.forEach.call(document.querySelectorAll("time[data-local]"), function (node) {
      var when = new Date(node.getAttribute("datetime"));
      if (!isNaN(when.getTime())) node.textContent = format.format(when) + " your time (" + node.textContent + ")";
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    localTimes();
    var status = document.getElementById("live-status");
    if (status) startLive(status);
  });
})();
