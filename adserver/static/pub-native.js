/*
 * Native slots of the publisher tag: /pub.js loads this file when a page has one.
 *   <ins class="adserver-slot" data-placement="blog-feed" data-format="native" data-template="ad-card"></ins>
 *   <template id="ad-card"> the site's own post markup, with data-native="..." on the elements to fill </template>
 * data-native: title, image, price (what it costs now), was (the price before a sale), store, logo, cta,
 * desc, label, adchoices, hide, link. Each slot, when it comes within 200px of the viewport, fetches
 * /ad.json?format=native (an OpenRTB Native 1.2 card) and fills a copy of its template. Values only
 * ever become text (textContent) or, for src/srcset/href, URLs of our answer that are https (or http
 * when this ad server itself is, in development); no markup from the answer reaches the page.
 * <a> elements marked title, image, store, logo, price, cta or link lead to the signed click URL. Every
 * card shows an "Ad" label and an ad-choices link: inserted when the template has none. Without a
 * template (or a data-template naming none) a plain card is drawn. The viewability beacon is the
 * framed unit's (half of the card in view for one second, page visible).
 * "Not interested": every card has a ✕ (the template's data-native="hide", else one put after the label)
 * offering "not this product" / "not this store"; the answer goes to the card's signed hide_url as a
 * beacon, and the slot folds until the next card, which leaves the answer out (x, xr, xs), replaces it.
 * Requests carry the page's IAB TCF answer (gdpr, gdpr_consent) as pub.js asks it.
 */
(function () {
  try {
    const w = window, d = document;
    const api = w.adserverSlots && w.adserverSlots.native;
    if (!api || api.ready) return;
    api.ready = true;
    const { origin, nonce, watch, guard, STATE, IO } = api;
    const consent = api.consent || ((fn) => fn(''));  // the page's TCF answer, as pub.js asks it
    const DATA = { 1: 'store', 2: 'desc', 6: 'price', 7: 'sale', 12: 'cta' };
    const LINKED = { title: 1, image: 1, store: 1, logo: 1, price: 1, cta: 1, link: 1 };
    const dev = origin.indexOf('http:') === 0;

    const safe = (u) => {
      try {
        const x = new URL(String(u), origin);
        if (x.username || x.password) return '';
        return x.protocol === 'https:' || (dev && x.protocol === 'http:') ? x.href : '';
      } catch (e) { return ''; }
    };
    const ours = (u) => { const s = safe(u); return s && new URL(s).origin === origin ? s : ''; };
    const srcset = (list) => String(list || '').split(',').map((c) => {
      const m = /^\s*(\S+)(\s+[0-9.]+[wx])?\s*$/.exec(c);
      const u = m && safe(m[1]);
      return u ? u + (m[2] || '') : '';
    }).filter(Boolean).join(', ');

    // The answer, reduced to what a template can show.
    const read = (n) => {
      const ext = n.ext || {};
      const v = { link: safe(n.link && n.link.url), privacy: safe(n.privacy) || origin + '/optout',
                  label: String(ext.label || 'Ad'), choices: String(ext.adchoices || 'Ad choices') };
      (Array.isArray(n.assets) ? n.assets : []).forEach((a) => {
        if (a.title) v.title = String(a.title.text || '');
        else if (a.img && a.img.type === 1) v.logo = safe(a.img.url);
        else if (a.img) v.image = a.img;
        else if (a.data && DATA[a.data.type]) v[DATA[a.data.type]] = String(a.data.value || '');
      });
      (Array.isArray(n.eventtrackers) ? n.eventtrackers : []).forEach((t) => {
        if (t.event === 2 && t.method === 1) v.viewable = ours(t.url);
      });
      const item = (Array.isArray(ext.products) && ext.products[0]) || {}, h = ours(item.hide_url), words = ext.hide || {};
      v.hide = h && new URL(h).pathname === '/ad/hide' ? h : '';
      v.sku = String(item.sku || '');
      v.words = { title: String(words.title || 'Not interested'), product: String(words.product || 'Not this product'),
                  store: String(words.store || 'Not this store') };
      return v;
    };

    const make = (tag, key, css, parent) => {
      const e = d.createElement(tag);
      if (key) e.setAttribute('data-native', key);
      if (css) e.style.cssText = css;
      if (parent) parent.appendChild(e);
      return e;
    };
    const imgIn = (el) => (el.tagName === 'IMG' ? el : make('img', '', 'max-width:100%', el));

    const image = (el, v) => {
      const im = v.image || {}, url = safe(im.url);
      if (!url) { el.hidden = true; return; }
      const img = imgIn(el);
      const set = im.ext && srcset(im.ext.webp_srcset || im.ext.srcset);
      if (set) img.srcset = set;
      img.src = url;
      img.alt = v.title || '';
      img.decoding = 'async';
    };

    // No logo in the answer: the store's initial in the logo's place (a monogram).
    const logo = (el, v) => {
      if (v.logo) {
        const img = imgIn(el);
        img.src = v.logo;
        img.alt = v.store || '';
        return;
      }
      const m = el.tagName === 'IMG' ? d.createElement('span') : el;
      m.textContent = (Array.from((v.store || '').trim())[0] || '•').toUpperCase();
      m.setAttribute('aria-hidden', 'true');
      if (m !== el) {
        m.className = el.className;
        m.setAttribute('data-native', 'logo');
        m.style.cssText = 'display:inline-flex;align-items:center;justify-content:center;font-weight:700';
        el.replaceWith(m);
      }
    };

    const choices = (el, v) => {
      const a = el.tagName === 'A' ? el : make('a', '', '', el);
      a.href = v.privacy;
      a.target = '_blank';
      a.rel = 'noopener';
      a.title = v.choices;
      a.setAttribute('aria-label', v.choices);
      if (!a.textContent.trim()) a.textContent = '\u24d8';
    };

    const fillOne = (el, key, v) => {
      if (key === 'image') image(el, v);
      else if (key === 'logo') logo(el, v);
      else if (key === 'adchoices') choices(el, v);
      else if (key !== 'link' && key !== 'hide') {
        const text = { title: v.title, store: v.store, price: v.sale || v.price, was: v.sale ? v.price : '',
                       cta: v.cta, desc: v.desc, label: v.label }[key];
        el.textContent = text || '';
        if (!text) el.hidden = true;
      }
      if (el.tagName !== 'A' || !LINKED[key] || !v.link) return false;
      el.href = v.link;
      el.target = '_blank';
      el.rel = 'sponsored noopener';
      return true;
    };

    // The card drawn when the page has no template: a small product post.
    const plain = () => {
      const f = d.createDocumentFragment();
      const box = make('div', '', 'border:1px solid #e3e6ea;border-radius:12px;padding:12px;font:14px/1.4 system-ui,' +
                       'sans-serif;color:#1f2328;background:#fff;max-width:560px', f);
      const top = make('div', '', 'display:flex;align-items:center;gap:8px;font-size:13px;color:#57606a', box);
      make('span', 'logo', 'width:24px;height:24px;border-radius:50%;background:#eef1f4;overflow:hidden;flex:none;' +
           'display:inline-flex;align-items:center;justify-content:center;font-weight:700', top);
      make('b', 'store', 'color:#1f2328', top);
      make('span', 'label', '', top);
      make('a', 'adchoices', 'margin-left:auto;color:#57606a;text-decoration:none', top);
      const a = make('a', 'link', 'display:flex;gap:12px;margin-top:8px;color:inherit;text-decoration:none', box);
      make('span', 'image', 'width:96px;height:96px;flex:none;border-radius:8px;overflow:hidden;background:#f6f8fa', a);
      const body = make('span', '', 'display:flex;flex-direction:column;gap:4px;min-width:0', a);
      make('span', 'title', 'font-weight:600', body);
      const row = make('span', '', '', body);
      make('span', 'price', 'color:#cf222e;font-weight:700', row);
      make('s', 'was', 'margin-left:6px;color:#57606a', row);
      make('span', 'cta', 'align-self:flex-start;border-radius:999px;background:#1f2328;color:#fff;padding:2px 12px', body);
      return f;
    };

    // The answer, as a beacon (with the visitor's cookie); the slot folds and asks for the next card.
    const answer = (el, card, v, reason) => {
      const body = new URLSearchParams({ reason, sku: v.sku, beacon: 1 });
      let sent = false;
      try { sent = navigator.sendBeacon(v.hide, body); } catch (e) { /* fall back */ }
      if (!sent) fetch(v.hide, { method: 'POST', body, mode: 'no-cors', credentials: 'include', keepalive: true }).catch(() => 0);
      const t = new URL(v.hide).searchParams.get('t') || '';
      load(el, '&x=' + encodeURIComponent(t) + '&xr=' + reason + '&xs=' + encodeURIComponent(v.sku));
      card.remove();
      el.style.display = 'none';
    };

    // The ✕: a toggle for the two choices, drawn over the card below it.
    const cross = (x, el, card, v) => {
      if (!v.hide) { x.hidden = true; return; }
      if (!x.textContent.trim()) x.textContent = '\u2715';
      x.title = v.words.title;
      x.setAttribute('aria-label', v.words.title);
      x.setAttribute('aria-haspopup', 'menu');
      x.style.cursor = 'pointer';
      let menu = null;
      const toggle = guard((e) => {
        e.preventDefault();
        e.stopPropagation();  // a card without links opens the product on any other click
        if (menu) { menu.remove(); menu = null; return; }
        const at = x.getBoundingClientRect(), box = card.getBoundingClientRect();  // just below the ✕
        menu = make('div', '', 'position:absolute;z-index:2;display:flex;flex-direction:column;gap:4px;padding:8px;' +
                    'border:1px solid #d0d7de;border-radius:8px;background:#fff;color:#1f2328;' +
                    'box-shadow:0 4px 12px rgba(0,0,0,.15);font:13px/1.4 system-ui,sans-serif;' +
                    'top:' + Math.round(at.bottom - box.top + 4) + 'px;right:' + Math.max(0, Math.round(box.right - at.right)) + 'px', card);
        menu.setAttribute('role', 'menu');
        menu.setAttribute('aria-label', v.words.title);
        ['product', 'store'].forEach((reason) => {
          const b = make('button', '', 'cursor:pointer;text-align:left;font:inherit;padding:4px 8px', menu);
          b.type = 'button';
          b.setAttribute('role', 'menuitem');
          b.setAttribute('data-hide', reason);
          b.textContent = v.words[reason];
          b.addEventListener('click', guard((e2) => { e2.stopPropagation(); answer(el, card, v, reason); }));
        });
        menu.firstChild.focus();
      });
      x.addEventListener('click', toggle);
      if (x.tagName === 'BUTTON') return;
      x.setAttribute('role', 'button');
      x.tabIndex = 0;
      x.addEventListener('keydown', (e) => { if (e.key === 'Enter' || e.key === ' ') toggle(e); });
    };

    const draw = (el, p, r, v) => {
      const id = el.getAttribute('data-template');
      const t = id ? d.getElementById(id) : null;
      const card = d.createElement('div');
      card.className = 'adserver-native';
      card.appendChild(t && t.tagName === 'TEMPLATE' ? t.content.cloneNode(true) : plain());
      let linked = false;
      card.querySelectorAll('[data-native]').forEach((e) => { linked = fillOne(e, e.getAttribute('data-native'), v) || linked; });
      let label = card.querySelector('[data-native="label"]');
      if (!label) {
        label = make('span', 'label', 'font-size:12px;color:#57606a;margin-right:6px', null);
        fillOne(label, 'label', v);
        const bar = make('div', '', 'font-size:12px;color:#57606a', null);
        bar.appendChild(label);
        card.insertBefore(bar, card.firstChild);
      }
      let ch = card.querySelector('[data-native="adchoices"]');
      if (!ch) {
        ch = make('a', 'adchoices', 'font-size:12px;color:#57606a', null);
        fillOne(ch, 'adchoices', v);
        label.after(ch);
      }
      let x = card.querySelector('[data-native="hide"]');
      if (!x) {
        x = make('button', 'hide', 'font:12px sans-serif;color:#57606a;background:none;border:0;padding:0 4px;margin-left:6px', null);
        x.type = 'button';
        (ch.parentNode === label.parentNode ? ch : label).after(x);
      }
      card.style.position = 'relative';  // the choices are drawn over it
      cross(x, el, card, v);
      if (v.link && !linked) {  // a template without a link: the whole card leads to the product
        card.style.cursor = 'pointer';
        card.addEventListener('click', (e) => {
          if (!e.target.closest('a')) w.open(v.link, '_blank', 'noopener');
        });
      }
      el.textContent = '';
      if (el.style.display === 'none') el.style.display = '';  // folded by an answer
      el.style.textDecoration = 'none';  // <ins> is underlined by default, and would underline the card
      if (w.getComputedStyle(el).display === 'inline') el.style.display = 'block';
      el.appendChild(card);
      const beacon = v.viewable || (r ? '' : null);
      if (IO && beacon !== null) watch(card, p, r, beacon);
    };

    const load = (el, answered) => {
      const p = el.getAttribute('data-placement');
      const r = nonce();
      let url = origin + '/ad.json?format=native&p=' + encodeURIComponent(p) + (answered || '');
      if (r) url += '&r=' + r;
      const box = el.getBoundingClientRect().width || (el.parentNode && el.parentNode.clientWidth) || 0;
      const width = Math.min(2000, Math.round(box));  // pictures sized for the slot
      if (width >= 16) url += '&img=' + width + 'x' + Math.max(16, Math.round(width * 9 / 16));
      consent((q) => fetch(url + q, { credentials: 'include' })
        .then((res) => (res.ok ? res.json() : null))
        .then(guard((j) => {
          if (j && j.native) draw(el, p, r, read(j.native));
          else el.setAttribute(STATE, 'empty');
        }))
        .catch(() => el.setAttribute(STATE, 'error')));
    };

    const near = IO ? new IntersectionObserver(guard((entries) => {
      entries.forEach((e) => {
        if (!e.isIntersecting) return;
        near.unobserve(e.target);
        load(e.target);
      });
    }), { rootMargin: '200px 0px' }) : null;
    const take = guard((el) => (near ? near.observe(el) : load(el)));
    const queue = api.queue;
    queue.splice(0).forEach(take);
    queue.push = (...els) => { els.forEach(take); return queue.length; };
  } catch (x) { /* never break the host page */ }
})();
