/* engage widget: "Do you like this article?", polls and related links.
   Embed: <div data-engage-article="ID"></div><script src="https://HOST/widget.js" async></script>
   With ENGAGE_READER_CONSENT no token is minted before engage.consent() or data-engage-consent.
   Plain JS, no build step. Data is only ever set with textContent. */
(function () {
  'use strict';
  var d = document, W = window;
  var me = d.currentScript || d.querySelector('script[src*="widget.js"]');
  if (!me || !d.head.attachShadow) return;
  var API = new URL(me.src, location.href).origin + '/api/v1';
  var KEY = 'engage.reader', memTok = null, minting = null, seen = {}, B = null, sheet = null, warned = 0,
    agreed = me.hasAttribute('data-engage-consent');
  var LANGS = ['ko', 'zh', 'es'], loading = {}, T = {
    en: {question: 'Do you like this article?', yes: 'Yes', no: 'No',
      why: 'What could be better? (optional)', thanks: 'Thanks, your vote is counted.',
      removed: 'Your vote was removed.', retry: 'Could not save that just now. Please try again in a moment.',
      related: 'Related', closed: 'This poll is closed.', vote: 'Vote', votes_one: 'vote', votes: 'votes',
      outdated: 'Outdated', inaccurate: 'Inaccurate', biased: 'Biased', unclear: 'Unclear',
      not_relevant: 'Not relevant', data: 'Your data'}
  };
  var DARK = '{color:#ece9e4;--bg:#202227;--bd:#464a52;--ac:#8cc2ff;--on:#10243a;--mu:#b0aca6;--bar:#2f4d70}';
  var CSS = ':host{display:block;font:15px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;' +
    'color:#1d1d1f;--bg:#fff;--bd:#d3d0ca;--ac:#0a58b0;--on:#fff;--mu:#5b5852;--bar:#cfe0f5}' +
    '@media (prefers-color-scheme:dark){:host(:not([data-engage-theme=light]))' + DARK + '}' +
    ':host([data-engage-theme=dark])' + DARK +
    '.b{background:var(--bg);border:1px solid var(--bd);border-radius:10px;padding:1em 1.1em;margin:0 0 .9em}' +
    'h2{font-size:1.05em;margin:0 0 .7em}p{margin:.2em 0 .6em}' +
    'button{font:inherit;color:inherit;background:var(--bg);border:1px solid var(--bd);border-radius:99px;' +
    'padding:.35em 1em;margin:0;margin-inline-end:.5em;margin-block-end:.5em;cursor:pointer;transition:background .15s,color .15s}' +
    'button:hover{border-color:var(--ac)}button[aria-pressed=true]{background:var(--ac);border-color:var(--ac);color:var(--on)}' +
    'button:disabled{opacity:.55;cursor:default}.n{font-weight:600;margin-inline-start:.4em}' +
    ':focus-visible{outline:3px solid var(--ac);outline-offset:2px}' +
    '.m{color:var(--mu);font-size:.9em;margin:0;min-height:1.3em}ul{list-style:none;margin:0;padding:0}' +
    'li{margin:.35em 0}a{color:var(--ac);text-underline-offset:2px}label{display:block;margin:.3em 0}' +
    '.r{display:flex;justify-content:space-between;font-size:.92em}.t{background:var(--bd);border-radius:4px;height:.5em;margin:.15em 0 .5em}' +
    '.bar{background:var(--ac);height:100%;border-radius:4px;transition:width .4s}' +
    '@media (prefers-reduced-motion:reduce){*{transition:none!important}}';

  function quiet() {}
  function enc(s) { return encodeURIComponent(s); }
  function getTok() { try { return W.localStorage.getItem(KEY) || memTok; } catch (e) { return memTok; } }
  function setTok(v) {
    memTok = v;
    try { if (v) W.localStorage.setItem(KEY, v); else W.localStorage.removeItem(KEY); } catch (e) { /* blocked: memory only */ }
  }

  function h(tag, attrs, kids) {
    var n = d.createElement(tag), k;
    for (k in attrs || {}) {
      if (attrs[k] == null) continue;
      if (k === 'text') n.textContent = attrs[k];
      else if (k === 'on') n.addEventListener(tag === 'input' ? 'change' : 'click', attrs[k]);
      else n.setAttribute(k, attrs[k]);
    }
    (kids || []).forEach(function (c) { if (c) n.appendChild(c); });
    return n;
  }

  function call(method, path, body, tok, keep) {
    var o = {method: method, headers: {}, credentials: 'omit', keepalive: !!keep};
    if (body) { o.headers['Content-Type'] = 'application/json'; o.body = JSON.stringify(body); }
    if (tok) o.headers['X-Engage-Reader'] = tok;
    return fetch(API + path, o).then(function (r) {
      if (!r.ok) throw r.status;
      return r.json();
    });
  }

  function token() {
    var tok = getTok();
    if (tok) return Promise.resolve(tok);
    if (B.consent && !agreed) return Promise.reject(0);
    minting = minting || call('POST', '/readers').then(function (r) {
      minting = null; setTok(r.reader); return r.reader;
    }, function (e) { minting = null; throw e; });
    return minting;
  }

  function t(w, k) {
    if (!w.lang) {
      var l = w.el.getAttribute('data-engage-lang') || d.documentElement.lang || (B && B.locale) || 'en';
      l = l.toLowerCase().split('-')[0];
      w.lang = T[l] ? l : (B && T[B.locale] ? B.locale : 'en');
    }
    return w.el.getAttribute('data-engage-' + k.replace(/_/g, '-')) || T[w.lang][k] || T.en[k] || k;
  }

  // Words other than English load on demand (widget-lang/<l>.js).
  function words(l) {
    l = (l || '').toLowerCase().split('-')[0];
    if (T[l] || LANGS.indexOf(l) < 0) return Promise.resolve();
    return loading[l] = loading[l] || new Promise(function (ok) {
      var s = d.createElement('script');
      s.src = API.slice(0, -7) + '/static/widget-lang/' + l + '.js';
      s.onload = s.onerror = ok;
      d.head.appendChild(s);
    });
  }

  function say(w, text) {
    w.live.textContent = '';
    setTimeout(function () { w.live.textContent = text; }, 30);
  }

  // Minted on first use; a refused one is renewed or replaced.
  function send(w, method, path, body, ok, fail, again) {
    token().then(function (tok) { return call(method, path, body, tok); }).then(function (res) {
      ok(res); render(w);
    }, function (e) {
      if (e === 401 && !again) {
        return call('POST', '/readers/renew', null, getTok()).then(function (r) { setTok(r.reader); }, function () {
          setTok(null);
        }).then(function () { send(w, method, path, body, ok, fail, 1); });
      }
      if (fail) fail(e);
      say(w, t(w, e === 409 ? 'closed' : 'retry'));
      render(w);
    }).catch(quiet);
  }

  function react(w, choice, reason) {
    var body = choice ? {choice: choice} : null;
    if (body && reason) body.reason = reason;
    w.at = 1;  // the message shows in the block answered
    send(w, choice ? 'PUT' : 'DELETE', '/articles/' + enc(w.id) + '/reactions/mine', body, function (r) {
      w.data.counts = r.counts; w.data.total = r.total; w.mine = r.mine; w.reason = r.reason || null;
      say(w, t(w, r.mine ? 'thanks' : 'removed'));
    });
  }

  function pollVote(w, p, options) {
    w.at = p.id;
    send(w, options.length ? 'PUT' : 'DELETE', '/polls/' + enc(p.id) + '/votes/mine',
      options.length ? {options: options} : null, function (r) {
        w.data.polls = w.data.polls.map(function (q) { return q.id === r.id ? r : q; });
        w.sel[p.id] = (r.mine || []).slice();
        say(w, t(w, r.mine && r.mine.length ? 'thanks' : 'removed'));
      }, function (e) { if (e === 409) p.status = 'closed'; });
  }

  function btn(label, key, pressed, on, extra, disabled) {
    return h('button', {type: 'button', 'aria-pressed': pressed == null ? null : String(pressed), 'data-k': key, on: on,
      disabled: disabled ? '' : null}, [d.createTextNode(extra ? label + ' ' : label), extra]);
  }

  function reactions(w) {
    var a = w.data, s = a.reaction_set || B, kids = [h('h2', {text: t(w, 'question')})];
    s.choices.forEach(function (c) {
      kids.push(btn(t(w, c), 'c:' + c, w.mine === c, function () {
        react(w, w.mine === c ? null : c);
      }, h('span', {'class': 'n', text: String(a.counts[c] || 0)})));
    });
    if (w.mine && w.mine === s.reason_choice && s.reasons.length) {
      kids.push(h('p', {'class': 'm', text: t(w, 'why')}));
      s.reasons.forEach(function (r) {
        kids.push(btn(t(w, r), 'r:' + r, w.reason === r, function () {
          react(w, w.mine, w.reason === r ? null : r);
        }));
      });
    }
    if (w.at === 1) kids.push(w.live);
    return h('div', {'class': 'b', role: 'group', 'aria-label': t(w, 'question')}, kids);
  }

  function poll(w, p) {
    var open = p.status === 'open' && !(p.closes_at && Date.parse(p.closes_at) <= Date.now());
    var mine = p.mine || [], sel = w.sel[p.id] = w.sel[p.id] || mine.slice();
    var kids = [h('h2', {text: p.question})], res = p.results;
    p.options.forEach(function (o) {
      if (p.multiple) {
        var on = sel.indexOf(o.id) >= 0;
        // At the maximum, the rest wait.
        var box = h('input', {type: 'checkbox', 'data-k': 'p:' + p.id + ':' + o.id, on: function () {
          var i = sel.indexOf(o.id);
          if (box.checked && i < 0) sel.push(o.id);
          if (!box.checked && i >= 0) sel.splice(i, 1);
          render(w);
        }, disabled: open && (on || sel.length < (p.max_choices || 99)) ? null : ''});
        box.checked = on;
        kids.push(h('label', {}, [box, d.createTextNode(' ' + o.label)]));
      } else {
        kids.push(btn(o.label, 'p:' + p.id + ':' + o.id, mine.indexOf(o.id) >= 0, function () {
          pollVote(w, p, mine.indexOf(o.id) >= 0 ? [] : [o.id]);
        }, null, !open));
      }
    });
    if (p.multiple && open) {
      kids.push(btn(t(w, 'vote'), 'v:' + p.id, null, function () { pollVote(w, p, sel.slice()); }));
    }
    if (res) {
      var pct = res.percentages || {};
      p.options.forEach(function (o) {
        var n = pct[o.id] != null ? pct[o.id] : (res.total ? Math.round(100 * (res.counts[o.id] || 0) / res.total) : 0);
        var bar = h('div', {'class': 'bar'});
        bar.style.width = n + '%';
        kids.push(h('div', {'class': 'r'}, [h('span', {text: o.label}), h('span', {text: n + '%'})]),
          h('div', {'class': 't', 'aria-hidden': 'true'}, [bar]));
      });
      // votes_<plural category>, else votes.
      var k = 'votes_' + new Intl.PluralRules(w.lang).select(res.total);
      kids.push(h('p', {'class': 'm', text: res.total + ' ' + t(w, T[w.lang][k] ? k : 'votes')}));
    }
    if (!open) kids.push(h('p', {'class': 'm', text: t(w, 'closed')}));
    if (w.at === p.id) kids.push(w.live);
    return h('div', {'class': 'b poll', role: 'group', 'aria-label': p.question}, kids);
  }

  function related(w) {
    var items = [];
    w.data.links.forEach(function (l) {
      var url;
      // Through our redirect, to count the click.
      try { url = new URL(l.related ? l.href : '/r/' + enc(l.id), API); } catch (e) { return; }
      if (!/^https?:$/.test(url.protocol)) return;
      var li = h('li', {}, [h('a', {href: url.href, 'data-k': 'l:' + l.id, text: l.title, on: l.related ? null : function (e) {
        // Credit in a form body, never the URL.
        var tok = getTok();
        if (!tok || e.button || e.ctrlKey || e.metaKey || e.shiftKey || e.altKey) return;
        e.preventDefault();
        var f = h('form', {method: 'post', action: url.href, hidden: ''}, [h('input', {type: 'hidden', name: 'reader', value: tok})]);
        d.body.appendChild(f);
        f.submit();
      }})]);
      if (!l.related) { li.__w = w; li.__l = l.id; w.obs.push(li); }
      items.push(li);
    });
    return items.length && h('div', {'class': 'b links'}, [h('h2', {text: t(w, 'related')}), h('ul', {}, items)]);
  }

  function render(w) {
    if (!w.data) return;
    var f = w.root.activeElement, k = f && f.getAttribute('data-k');
    if (io) w.obs.forEach(function (n) { io.unobserve(n); clearTimeout(n.__t); });
    w.obs = [];
    var kids = [reactions(w)].concat(w.data.polls.map(function (p) { return poll(w, p); }), [related(w),
      h('a', {'class': 'm', href: '#', target: '_blank', rel: 'noopener', 'data-k': 'd', text: t(w, 'data'), on: function (e) {
        // In the fragment: never sent to a server.
        e.target.href = API.slice(0, -7) + '/your-data?lang=' + w.lang + '#' + (getTok() || '');
      }})]);
    w.box.textContent = '';
    w.box.lang = w.lang;
    kids.forEach(function (n) { if (n) w.box.appendChild(n); });
    if (io) w.obs.forEach(function (n) { io.observe(n); });
    if (k) [].forEach.call(w.box.querySelectorAll('[data-k]'), function (n) {
      if (n.getAttribute('data-k') === k) n.focus();
    });
  }

  // Seen: half a link visible for a second, once a page.
  var io = W.IntersectionObserver && new IntersectionObserver(function (entries) {
    entries.forEach(function (e) {
      var n = e.target;
      if (e.intersectionRatio >= 0.5) {
        if (!n.__t) n.__t = setTimeout(function () { n.__t = 0; saw(n.__w, n.__l); }, 1000);
      } else { clearTimeout(n.__t); n.__t = 0; }
    });
  }, {threshold: [0, 0.5, 1]});

  function saw(w, id) {
    var k = w.id + ' ' + id;
    if (seen[k]) return;
    seen[k] = 1;
    w.q.push(id);
    clearTimeout(w.qt);
    w.qt = setTimeout(function () {
      var ids = w.q; w.q = [];
      call('POST', '/articles/' + enc(w.id) + '/links/impressions', {links: ids}, null, 1).catch(quiet);
    }, 200);
  }

  function mount(el, id) {
    var root = el.attachShadow({mode: 'open'});
    if (!sheet) {
      try { sheet = new CSSStyleSheet(); sheet.replaceSync(CSS); } catch (e) { sheet = 0; }
    }
    if (sheet) root.adoptedStyleSheets = [sheet];
    else root.appendChild(h('style', {text: CSS}));
    var w = {el: el, id: id, root: root, box: h('div'), sel: {}, obs: [], q: [], mine: null, reason: null,
      live: h('p', {'class': 'm', role: 'status', 'aria-live': 'polite'})};
    root.appendChild(w.box);
    root.appendChild(w.live);
    return w;
  }

  // One shared read for all widgets, one private with a token.
  function scan() {
    var ws = [], ids = [];
    [].forEach.call(d.querySelectorAll('[data-engage-article]'), function (el) {
      var id = el.getAttribute('data-engage-article');
      if (el.__engage || !id) return;
      el.__engage = 1;
      try { ws.push(mount(el, id)); } catch (e) { return; }
      if (ids.indexOf(id) < 0) ids.push(id);
    });
    if (!ws.length) return;
    var q = ids.slice(0, 20).map(function (i) { return 'article=' + enc(i); }).join('&');
    // An unknown article is verified from this address.
    var c = d.querySelector('link[rel=canonical]'), u = '&url=' + enc(c && c.href || location.origin + location.pathname);
    var tok = getTok();
    // A refused token is kept: the next action renews it.
    var mine = tok ? call('GET', '/widget/mine?' + q, null, tok).catch(function () { return null; })
      : Promise.resolve(null);
    function read(n) {
      call('GET', '/widget?' + q + u).then(function (b) {
        B = b;
        // Unknown: look again while its page is verified.
        if (b.unknown.length && n < 6) setTimeout(read, 1800, n + 1);
        return Promise.all(ws.map(function (w) {
          return words(w.el.getAttribute('data-engage-lang') || d.documentElement.lang || b.locale);
        }).concat(words(b.locale), mine)).then(function (got) {
          var m = got.pop();
          ws.forEach(function (w) {
            var a = b.articles[w.id], my = m && m.articles[w.id];
            if (!a || w.data) return;
            if (my) {
              w.mine = my.mine; w.reason = my.reason || null; a.counts = my.counts; a.total = my.total;
              my.polls.forEach(function (p) {
                a.polls = a.polls.map(function (x) { return x.id === p.id ? p : x; });
              });
            }
            w.data = JSON.parse(JSON.stringify(a));
            render(w);
          });
        });
      }, function (e) {
        // Answered but unreadable: this origin is refused.
        if (!(e instanceof TypeError)) throw e;
        return fetch(me.src, {mode: 'no-cors', cache: 'no-cache'}).then(function () {
          ws.forEach(function (w) { w.el.style.display = 'none'; });
          warned++ || console.warn('engage: ' + API + ' refuses ' + location.origin +
            '; add it to ENGAGE_ALLOWED_ORIGINS');
        });
      }).catch(function () {
        ws.forEach(function (w) { say(w, t(w, 'retry')); });
      });
    }
    read(0);
  }

  W.engage = {scan: function () { try { scan(); } catch (e) { /* never break the host page */ } },
    consent: function () { agreed = 1; }, words: function (l, w) { T[l] = w; }};
  if (d.readyState === 'loading') d.addEventListener('DOMContentLoaded', W.engage.scan);
  else W.engage.scan();
})();
