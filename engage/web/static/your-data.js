/* The "Your data" page: export or erase with the reader token the widget put in the
   fragment. A file, not an inline script: the page's CSP allows this server's only. */
(function () {
  'use strict';
  var d = document, box = d.getElementById('data'), out = d.getElementById('out');
  var tok = decodeURIComponent(location.hash.slice(1));
  // Out of the address bar and history, where the token would outlive the visit.
  history.replaceState(null, '', location.pathname + location.search);

  function say(k) { out.textContent = box.getAttribute('data-' + k); }
  function call(method) {
    return fetch('/api/v1/readers/me/data', {method: method, headers: {'X-Engage-Reader': tok}})
      .then(function (r) { if (!r.ok) throw r.status; return r.json(); });
  }
  function failed(e) { say(e === 401 ? 'none' : 'failed'); }

  if (!tok) say('none');
  d.getElementById('get').addEventListener('click', function () {
    if (!tok) return say('none');
    call('GET').then(function (data) {
      var text = JSON.stringify(data, null, 2), a = d.createElement('a'), pre = d.getElementById('json');
      pre.textContent = text;
      pre.hidden = false;
      a.href = URL.createObjectURL(new Blob([text], {type: 'application/json'}));
      a.download = 'my-data.json';
      a.click();
      say('saved');
    }, failed);
  });
  d.getElementById('erase').addEventListener('click', function () {
    if (!tok) return say('none');
    if (!confirm(box.getAttribute('data-confirm'))) return;
    call('DELETE').then(function () { tok = ''; say('erased'); }, failed);
  });
})();
