/*
 * Publisher tag. Put a slot where the ad goes and load the script once per page (async, anywhere):
 *   <ins class="adserver-slot" data-placement="blog-side" data-size="300x250"></ins>
 *   <script async src="https://ads.example/pub.js"></script>
 * data-size is WxH or "responsive" (full width; data-height sets the height, default 260).
 * Slots added later are found by themselves (MutationObserver); to force a scan:
 *   window.adserverSlots = window.adserverSlots || [];
 *   adserverSlots.push(element);          // or adserverSlots.refresh()
 * Each slot becomes a sandboxed iframe of /ad, loaded within 200px of the viewport. Half of it in view
 * for 1 s, page visible (MRC): one beacon to /px/viewable, naming the impression by the URL's random
 * nonce r (the server derives the id from it), so nothing is read from the cross-origin unit.
 * IAB TCF: slot URLs carry gdpr and gdpr_consent from the page's __tcfapi (docs/integrations.md).
 * Native slots (data-format="native"): drawn by /pub-native.js, loaded with the first one (docs/publishers.md).
 */
(function () {
  try {
    const w = window, d = document;
    if (w.adserverSlots && w.adserverSlots.loaded) return;
    const me = d.currentScript || d.querySelector('script[src*="pub.js"]');
    const origin = new URL(me.src, w.location.href).origin;
    const PLACEMENT = /^[a-z0-9][a-z0-9_-]{0,63}$/;
    const SIZE = /^([0-9]{2,4})x([0-9]{2,4})$/;
    const STATE = 'data-adserver-status';
    const IO = typeof w.IntersectionObserver === 'function';
    const guard = (fn) => function () { try { return fn.apply(this, arguments); } catch (x) { /* ignore */ } };

    // 18 random bytes, base64url: 24 characters (the server accepts 16-64).
    const nonce = () => {
      const c = w.crypto;
      if (!c || !c.getRandomValues) return '';
      const b = c.getRandomValues(new Uint8Array(18));
      return btoa(String.fromCharCode.apply(null, b)).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
    };

    const beacon = (url) => {
      try { if (navigator.sendBeacon && navigator.sendBeacon(url)) return; } catch (x) { /* fall back */ }
      new Image(1, 1).src = url;
    };

    // Viewability of one loaded slot: >= 50% in view for 1 s while the page is visible, reported once.
    const watch = (f, p, r, url) => {
      let inView = false, timer = 0, done = false;
      const check = guard(() => {
        const on = inView && d.visibilityState !== 'hidden';
        if (on && !timer && !done) {
          timer = setTimeout(guard(() => {
            timer = 0;
            if (done || !inView || d.visibilityState === 'hidden') return;
            done = true;
            io.disconnect();
            d.removeEventListener('visibilitychange', check);
            beacon(url || origin + '/px/viewable?p=' + encodeURIComponent(p) + '&r=' + r);
          }), 1000);
        } else if (!on && timer) {
          clearTimeout(timer);
          timer = 0;
        }
      });
      const io = new IntersectionObserver(guard((entries) => {
        const e = entries[entries.length - 1];
        inView = e.isIntersecting && e.intersectionRatio >= 0.499;
        check();
      }), { threshold: [0, 0.25, 0.5, 0.75, 1] });
      io.observe(f);
      d.addEventListener('visibilitychange', check);
    };

    // IAB TCF: with a CMP (__tcfapi), slots wait for its answer (at most 2 s, then gdpr=1 without a string).
    let gdpr = '', tcf = null;
    const consent = (fn) => {
      const api = w.__tcfapi;
      if (typeof api !== 'function') return fn('');
      tcf = tcf || new Promise((ok) => {
        setTimeout(() => { gdpr = gdpr || '&gdpr=1'; ok(); }, 2000);
        try {
          api('addEventListener', 2, guard((t, s) => {
            if (!s || !t || !/^(tcloaded|useractioncomplete)$/.test(t.eventStatus)) return;
            const c = String(t.tcString || '').split('.')[0];  // the core segment is what we read
            gdpr = t.gdprApplies === false ? '&gdpr=0' : '&gdpr=1&gdpr_consent=' + (/^[\w-]{1,3000}$/.test(c) ? c : '');
            ok();
          }));
        } catch (x) { gdpr = '&gdpr=1'; ok(); }
      });
      tcf.then(guard(() => fn(gdpr)));
    };

    const load = (f, p, size) => {
      const r = nonce();
      let url = origin + '/ad?p=' + encodeURIComponent(p) + '&size=' + encodeURIComponent(size);
      if (r) url += '&r=' + r;
      if (r && IO) f.addEventListener('load', guard(() => watch(f, p, r)), { once: true });
      consent((q) => { f.src = url + q; });
    };

    const slots = new WeakMap();  // iframe -> {p, size}, until it loads
    const near = IO ? new IntersectionObserver(guard((entries) => {
      entries.forEach((e) => {
        if (!e.isIntersecting) return;
        near.unobserve(e.target);
        const s = slots.get(e.target);
        if (s) load(e.target, s.p, s.size);
      });
    }), { rootMargin: '200px 0px' }) : null;

    // Native slots wait in this queue for /pub-native.js (fetched once), which then drains it.
    const natives = [];
    let nativeJs = false;
    const native = (el) => {
      el.setAttribute(STATE, 'filled');
      natives.push(el);
      if (nativeJs) return;
      nativeJs = true;
      const s = d.createElement('script');
      s.async = true;
      s.src = origin + '/pub-native.js';
      (d.head || d.documentElement).appendChild(s);
    };

    const fill = (el) => {
      if (!el || el.nodeType !== 1 || el.hasAttribute(STATE)) return;
      const p = el.getAttribute('data-placement') || '';
      if (!PLACEMENT.test(p)) { el.setAttribute(STATE, 'invalid'); return; }
      if (el.getAttribute('data-format') === 'native') { native(el); return; }
      const m = SIZE.exec(el.getAttribute('data-size') || '');
      const f = d.createElement('iframe');
      if (m) {
        f.width = m[1];
        f.height = m[2];
      } else {
        f.width = '100%';
        f.height = String(parseInt(el.getAttribute('data-height'), 10) || 260);
      }
      f.title = el.getAttribute('data-title') || 'Advertisement';
      f.setAttribute('loading', 'lazy');
      f.setAttribute('scrolling', 'no');
      f.setAttribute('frameborder', '0');
      f.setAttribute('sandbox', 'allow-forms allow-popups allow-popups-to-escape-sandbox allow-top-navigation-by-user-activation');
      f.style.cssText = 'border:0;display:block;max-width:100%';
      el.setAttribute(STATE, 'filled');
      el.appendChild(f);
      const size = m ? m[0] : 'responsive';
      if (near) {
        slots.set(f, { p, size });
        near.observe(f);
      } else {
        load(f, p, size);
      }
    };

    const scan = guard(() => d.querySelectorAll('ins.adserver-slot:not([' + STATE + '])').forEach(guard(fill)));

    // Reuse the page's queue (it may be referenced elsewhere); push now fills or rescans.
    const q = Array.isArray(w.adserverSlots) ? w.adserverSlots : [];
    const pending = q.splice(0);
    q.push = guard((...items) => { items.forEach(guard(fill)); scan(); return 0; });
    q.refresh = scan;
    q.native = { queue: natives, origin, nonce, watch, guard, STATE, IO, consent };
    q.loaded = true;
    w.adserverSlots = q;
    pending.forEach(guard(fill));

    if (typeof w.MutationObserver === 'function') {
      let queued = false;
      new MutationObserver(guard((records) => {
        if (queued || !records.some((r) => r.addedNodes.length)) return;
        queued = true;
        setTimeout(guard(() => { queued = false; scan(); }), 0);
      })).observe(d.documentElement, { childList: true, subtree: true });
    }
    if (d.readyState === 'loading') d.addEventListener('DOMContentLoaded', scan);
    scan();
  } catch (x) { /* never break the host page */ }
})();
