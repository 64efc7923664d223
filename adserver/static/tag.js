/*
 * Store tag. Install on every page (the noscript pixel names the page's own event):
 *   <script async src="https://ads.example/tag.js" data-advertiser="demo"></script>
 *   <noscript><img src="https://ads.example/px.gif?a=demo&e=view_home" width="1" height="1" alt=""></noscript>
 * Events (view_home view_list view_item add_to_cart view_cart purchase) from attributes, on load:
 *   <body data-adserver-event="view_item" data-adserver-sku="D1001">
 * or from script, also before the tag loads (queued):
 *   window.adserver = window.adserver || [];
 *   adserver.push({event: 'view_item', sku: 'D1001'});
 *   adserver.push({event: 'purchase', sku: ['D1', 'D2'], order: 'O1', value: '12.50', currency: 'CNY'});
 * Consent (IAB TCF): hits carry gdpr and gdpr_consent from the page's __tcfapi (docs/integrations.md).
 */
(function () {
  try {
    const w = window, d = document;
    if (w.adserver && w.adserver.loaded) return;
    const me = d.currentScript || d.querySelector('script[src*="tag.js"][data-advertiser]');
    const adv = me.getAttribute('data-advertiser') || '';
    const origin = new URL(me.src, w.location.href).origin;
    const F = ['order', 'value', 'currency'];
    // Whole characters within max bytes, so the request line stays < 4094 bytes.
    const enc = (s, max) => {
      let out = '';
      for (const ch of String(s)) {
        let e = '';
        try { e = encodeURIComponent(ch); } catch (x) { /* lone surrogate */ }
        if (out.length + e.length > max) break;
        out += e;
      }
      return out;
    };
    // IAB TCF: with a CMP (__tcfapi), hits wait for its answer (at most 2 s, then gdpr=1 without a string).
    let gdpr = '', tcf = null;
    const cmp = (fn) => {
      const api = w.__tcfapi;
      if (typeof api !== 'function') return fn();
      tcf = tcf || new Promise((ok) => {
        setTimeout(() => { gdpr = gdpr || '1'; ok(); }, 2000);
        try {
          api('addEventListener', 2, (t, s) => {
            if (!s || !t || !/^(tcloaded|useractioncomplete)$/.test(t.eventStatus)) return;
            const c = String(t.tcString || '').split('.')[0];  // the core segment is what we read
            gdpr = t.gdprApplies === false ? '0' : '1&gdpr_consent=' + (/^[\w-]{1,1600}$/.test(c) ? c : '');
            ok();
          });
        } catch (x) { gdpr = '1'; ok(); }
      });
      tcf.then(fn);
    };
    // Up to 50 whole skus within 1000 bytes.
    const skus = (v) => {
      let out = '';
      for (const id of [].concat(v).join(',').split(',').slice(0, 50)) {
        const e = enc(id.trim(), 300);
        if (e && out.length + e.length <= 997) out += (out && '%2C') + e;
      }
      return out;
    };
    const hit = (c) => {
      try {
        const v = { a: enc(adv, 100), e: enc(c.event, 100), sku: c.sku == null ? '' : skus(c.sku) };
        for (const k of F) v[k] = c[k] == null ? '' : enc(c[k], 100);
        const room = 1000 - Math.floor(gdpr.length / 2);  // a consent string takes from the url and ref
        v.url = enc(w.location.href, room);
        v.ref = enc(d.referrer || '', room);
        v.gdpr = gdpr;
        v.cb = Math.random().toString(36).slice(2, 10);
        new Image(1, 1).src = origin + '/px.gif?' + Object.keys(v).filter((k) => v[k]).map((k) => k + '=' + v[k]).join('&');
      } catch (x) { /* ignore */ }
    };
    const send = (c) => {
      try {
        if (!c || !c.event) return;
        cmp(() => hit(c));
      } catch (x) { /* ignore */ }
    };
    const scan = () => {
      try {
        d.querySelectorAll('[data-adserver-event]').forEach((el) => {
          const c = {};
          for (const k of ['event', 'sku', ...F]) c[k] = el.getAttribute('data-adserver-' + k) || undefined;
          send(c);
        });
      } catch (x) { /* ignore */ }
    };
    // Reuse the page's array (it may be referenced); push now sends.
    const q = Array.isArray(w.adserver) ? w.adserver : [];
    const pending = q.splice(0);
    q.push = (...cmds) => cmds.forEach(send);
    q.loaded = true;
    w.adserver = q;
    if (d.readyState === 'loading') d.addEventListener('DOMContentLoaded', scan);
    else scan();
    pending.forEach(send);
  } catch (x) { /* never break the host page */ }
})();
