// engage dashboard forms: times typed in the editor's own time zone.
// The forms work without this file (times are then read as UTC, as the page says);
// with it, the zone goes along in the hidden `tz` field and the UTC value shows as
// the time is typed. No inline script (CSP); text goes in through textContent only.
(function () {
  "use strict";

  function pad(n) {
    return (n < 10 ? "0" : "") + n;
  }

  function localValue(date) {
    return date.getFullYear() + "-" + pad(date.getMonth() + 1) + "-" + pad(date.getDate()) +
      "T" + pad(date.getHours()) + ":" + pad(date.getMinutes());
  }

  function utcText(date) {
    return date.getUTCFullYear() + "-" + pad(date.getUTCMonth() + 1) + "-" + pad(date.getUTCDate()) +
      " " + pad(date.getUTCHours()) + ":" + pad(date.getUTCMinutes()) + " UTC";
  }

  function zoneName() {
    try {
      return Intl.DateTimeFormat().resolvedOptions().timeZone || "";
    } catch (e) {
      return "";
    }
  }

  function enhance(input, zone) {
    var tz = input.form && input.form.querySelector("input[data-tz]");
    var hint = document.getElementById(input.getAttribute("data-local-time"));
    if (!tz || !hint) return;
    // The server writes stored times in UTC: show them in the editor's zone instead.
    if (input.value && tz.value === "UTC") {
      var stored = new Date(input.value + ":00Z");
      if (!isNaN(stored.getTime())) input.value = localValue(stored);
    }
    if (!tz.value || tz.value === "UTC") tz.value = zone;
    var shownZone = tz.value;

    function show() {
      var when = input.value ? new Date(input.value) : null; // no offset: local time
      var text = "Your local time (" + shownZone + ")";
      if (when && !isNaN(when.getTime())) text += ". In UTC: " + utcText(when);
      hint.textContent = text + ".";
    }
    input.addEventListener("input", show);
    input.addEventListener("change", show);
    show();
  }

  document.addEventListener("DOMContentLoaded", function () {
    var zone = zoneName();
    if (!zone) return;
    Array.prototype.forEach.call(document.querySelectorAll("input[data-local-time]"), function (input) {
      enhance(input, zone);
    });
  });
})();
