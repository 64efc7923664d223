// A stand-in for Google Tag Manager's template sandbox, for running the store tag's template in a
// real browser: `require` gives only the sandbox APIs the template uses, each checking the
// template's declared permissions the way GTM does (an API used without its permission throws),
// and `runScenarios` runs the template's own ___TESTS___ with GTM's mock / assertApi / assertThat.
window.gtmSandbox = (() => {
  // GTM URL match patterns: https, the host exact, '*' matching anything, and a pattern ending in
  // '/' matching every path below it. The URL is parsed first, so "https://allowed@evil/" is evil.
  const urlAllowed = (url, patterns) => {
    let u;
    try { u = new URL(url); } catch (e) { return false; }
    const target = u.origin + u.pathname + u.search;
    return patterns.some((pattern) => {
      const body = pattern.split('*').map((s) => s.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*');
      return new RegExp('^' + body + (pattern.endsWith('/') ? '.*' : '') + '$').test(target);
    });
  };

  const denied = (permission, what) => new Error(`permission ${permission} denied: ${what}`);

  // Values cross into the sandbox as copies (GTM deep-copies them), never as live page objects.
  const copy = (v) => (v === undefined ? undefined : structuredClone(v));

  const realApis = (perms, logs) => ({
    sendPixel(url, onSuccess, onFailure) {
      if (!urlAllowed(url, perms.sendPixel)) throw denied('send_pixel', url);
      const img = new Image(1, 1);
      img.onload = () => onSuccess && onSuccess();
      img.onerror = () => onFailure && onFailure();
      img.src = url;
    },
    encodeUriComponent(s) {
      try { return encodeURIComponent(s); } catch (e) { return undefined; }
    },
    // The data layer's value of the key as of the latest push that set it (what GTM's merged model
    // holds when the store pushes `{ecommerce: null}` before each event, as GA4's guide says to).
    copyFromDataLayer(key) {
      if (!perms.dataLayerKeys.includes(key)) throw denied('read_data_layer', key);
      let value;
      for (const push of window.dataLayer || []) {
        if (push && Object.prototype.hasOwnProperty.call(push, key)) value = push[key];
      }
      return copy(value);
    },
    getUrl() {
      if (!perms.getUrl) throw denied('get_url', 'url');
      return location.href;
    },
    getReferrerUrl() {
      if (!perms.getReferrer) throw denied('get_referrer', 'referrer');
      return document.referrer;
    },
    logToConsole(...args) {
      if (!perms.logging) throw denied('logging', 'console');
      logs.push(args.map(String).join(' '));
    },
    makeString: (v) => String(v),
    getType: (v) => (v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v),
    generateRandom: (min, max) => min + Math.floor(Math.random() * (max - min + 1)),
  });

  // Runs the template once; `onDone(ok)` when it calls gtmOnSuccess / gtmOnFailure.
  const execute = (code, data, perms, mocks, onDone) => {
    const logs = [];
    const calls = {};
    const real = realApis(perms, logs);
    const track = (name, fn) => (...args) => {
      (calls[name] = calls[name] || []).push(args);
      return fn(...args);
    };
    const require = (name) => {
      const fn = mocks[name] || real[name];
      if (!fn) throw new Error(`require: ${name} is not a sandbox API this stand-in knows`);
      return track(name, fn);
    };
    const sandboxData = Object.assign(copy(data), {
      gtmOnSuccess: track('gtmOnSuccess', () => onDone(true)),
      gtmOnFailure: track('gtmOnFailure', () => onDone(false)),
    });
    let error = null;
    try {
      new Function('require', 'data', code)(require, sandboxData);
    } catch (e) {
      error = String(e);
    }
    return { logs, calls, error };
  };

  // Resolves once the template reports success or failure (or throws, as GTM's sandbox would fail the tag).
  const run = (code, data, perms) => new Promise((resolve) => {
    let state = null;
    let outcome = null;
    const finish = () => {
      if (state && outcome !== null) resolve({ ok: outcome, logs: state.logs, error: state.error });
    };
    state = execute(code, data, perms, {}, (ok) => { if (outcome === null) { outcome = ok; finish(); } });
    if (state.error) { outcome = false; }
    finish();
    // GTM waits for one of the two callbacks; a template that calls neither never completes.
    setTimeout(() => resolve({ ok: null, logs: state.logs, error: 'neither gtmOnSuccess nor gtmOnFailure was called' }),
      5000);
  });

  const plain = (v) => JSON.stringify(v, (k, x) => (typeof x === 'function' ? '<function>' : x));

  const runScenarios = (code, perms, setup, scenarios) => scenarios.map(({ name, body }) => {
    const mocks = {};
    let last = { calls: {} };
    const calls = (api) => last.calls[api] || [];
    const helpers = {
      mock: (api, impl) => { mocks[api] = impl; },
      runCode: (data) => {
        last = execute(code, data, perms, mocks, () => {});
        if (last.error) throw new Error(last.error);
      },
      assertApi: (api) => ({
        wasCalled() { if (!calls(api).length) throw new Error(`${api} was not called`); },
        wasNotCalled() { if (calls(api).length) throw new Error(`${api} was called`); },
        wasCalledWith(...args) {
          if (!calls(api).some((c) => plain(c.slice(0, args.length)) === plain(args))) {
            throw new Error(`${api} was not called with ${plain(args)}: ${plain(calls(api))}`);
          }
        },
      }),
      assertThat: (actual) => ({
        isEqualTo(expected) {
          if (plain(actual) !== plain(expected)) throw new Error(`${plain(actual)} is not ${plain(expected)}`);
        },
        isTrue() { if (actual !== true) throw new Error(`${plain(actual)} is not true`); },
        isFalse() { if (actual !== false) throw new Error(`${plain(actual)} is not false`); },
      }),
      require: (api) => realApis(perms, [])[api],
      fail: (message) => { throw new Error(message); },
    };
    try {
      new Function(...Object.keys(helpers), setup + '\n' + body)(...Object.values(helpers));
      return { name, error: null };
    } catch (e) {
      return { name, error: String(e) };
    }
  });

  return { run, runScenarios, urlAllowed };
})();
