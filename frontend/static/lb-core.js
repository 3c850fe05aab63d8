/* LeadersBoard page: shared state, events, i18n lookup, DOM helpers, the API client and error wording.
 * Every file of the page only registers into window.LB; LB.start (lb-main.js) runs once all are loaded. */
(function () {
  "use strict";
  const LB = (window.LB = window.LB || {});
  LB.loaded = LB.loaded || {};
  const REQUIRED = ["core", "i18n", "hash", "upload", "submit", "jobs", "plot", "board", "main"];
  LB.ready = () => REQUIRED.every((name) => LB.loaded[name]);

  const TOKEN_KEY = "leadersboard.token";
  const LANG_KEY = "leadersboard.lang";

  function stored(key) {
    try {
      return window.localStorage.getItem(key) || "";
    } catch (e) {
      return "";
    }
  }
  function store(key, value) {
    try {
      if (value) window.localStorage.setItem(key, value);
      else window.localStorage.removeItem(key);
    } catch (e) {
      /* private mode: the page still works, it just forgets */
    }
  }

  LB.state = LB.state || { token: stored(TOKEN_KEY), lang: stored(LANG_KEY), me: null, config: {} };

  /* ---- events ---- */
  const bus = new EventTarget();
  LB.on = (name, fn) => bus.addEventListener(name, (e) => fn(e.detail));
  LB.emit = (name, detail) => bus.dispatchEvent(new CustomEvent(name, { detail }));

  LB.setToken = (token) => {
    LB.state.token = (token || "").trim();
    store(TOKEN_KEY, LB.state.token);
    LB.emit("token", LB.state.token);
  };
  LB.setLang = (lang) => {
    LB.state.lang = lang;
    store(LANG_KEY, lang);
    document.documentElement.lang = lang;
    LB.emit("lang", lang);
  };

  /* ---- i18n ---- */
  LB.t = (key, vars) => {
    const tables = LB.i18n || {};
    const lang = LB.state.lang || "en";
    const pick = (code) => (tables[code] && Object.prototype.hasOwnProperty.call(tables[code], key) ? tables[code][key] : undefined);
    let text = pick(lang);
    if (text === undefined) text = pick("en");
    if (text === undefined) text = key;
    if (vars) text = text.replace(/\{(\w+)\}/g, (m, name) => (name in vars ? String(vars[name]) : m));
    return text;
  };
  /* Elements carrying data-i18n (text), data-i18n-placeholder, data-i18n-title, data-i18n-aria are relabelled. */
  LB.applyI18n = (root) => {
    root.querySelectorAll("[data-i18n]").forEach((el) => (el.textContent = LB.t(el.dataset.i18n)));
    root.querySelectorAll("[data-i18n-placeholder]").forEach((el) => (el.placeholder = LB.t(el.dataset.i18nPlaceholder)));
    root.querySelectorAll("[data-i18n-title]").forEach((el) => (el.title = LB.t(el.dataset.i18nTitle)));
    root.querySelectorAll("[data-i18n-aria]").forEach((el) => el.setAttribute("aria-label", LB.t(el.dataset.i18nAria)));
  };

  /* ---- DOM ---- */
  /* h("div", {class: "x", onclick: fn, dataset: {i18n: "k"}}, "text", child): text is never parsed as HTML. */
  LB.h = (tag, attrs, ...children) => {
    const el = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (name === "class") el.className = value;
      else if (name === "dataset") Object.assign(el.dataset, value);
      else if (name.startsWith("on") && typeof value === "function") el.addEventListener(name.slice(2), value);
      else if (name in el && typeof value !== "string") el[name] = value;
      else el.setAttribute(name, value === true ? "" : value);
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      el.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return el;
  };
  /* Replace an element's children; null and undefined are left out. */
  LB.fill = (el, ...children) => el.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
  LB.tx = (key, attrs) => LB.h("span", Object.assign({ dataset: { i18n: key } }, attrs || {}), LB.t(key));
  LB.spinner = () => LB.h("span", { class: "lb-spinner", "aria-hidden": "true" });

  /* ---- formatting ---- */
  LB.fmtBytes = (n) => {
    if (n === null || n === undefined) return "";
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let i = 0;
    let v = n;
    while (v >= 1024 && i < units.length - 1) {
      v /= 1024;
      i += 1;
    }
    return (i === 0 ? String(v) : v.toFixed(v < 10 ? 1 : 0)) + " " + units[i];
  };
  LB.fmtDuration = (seconds) => {
    if (seconds === null || seconds === undefined || !isFinite(seconds)) return "";
    const s = Math.max(0, Math.round(seconds));
    if (s < 60) return s + " s";
    if (s < 3600) return Math.floor(s / 60) + " min " + (s % 60) + " s";
    return Math.floor(s / 3600) + " h " + Math.floor((s % 3600) / 60) + " min";
  };
  LB.fmtTime = (iso) => {
    if (!iso) return "";
    const d = new Date(iso);
    if (isNaN(d)) return iso;
    const pad = (n) => String(n).padStart(2, "0");
    return d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate()) + " " + pad(d.getHours()) + ":" + pad(d.getMinutes()) + ":" + pad(d.getSeconds());
  };
  LB.fmtAgo = (iso) => {
    if (!iso) return "";
    const s = (Date.now() - new Date(iso).getTime()) / 1000;
    if (!isFinite(s)) return "";
    if (s < 45) return LB.t("ago_now");
    if (s < 3600) return LB.t("ago_min", { n: Math.round(s / 60) });
    if (s < 86400) return LB.t("ago_h", { n: Math.round(s / 3600) });
    return LB.t("ago_d", { n: Math.round(s / 86400) });
  };
  /* Scores (0..1) with 4 decimals, counts and large values as they are. */
  LB.fmtMetric = (v) => {
    if (typeof v !== "number") return "";
    if (Math.abs(v) >= 1000 || (Number.isInteger(v) && Math.abs(v) > 1)) return String(v);
    return v.toFixed(4);
  };

  /* ---- the API ---- */
  class ApiError extends Error {
    constructor(status, code, message, retryAfter) {
      super(message);
      this.status = status;
      this.code = code;
      this.retryAfter = retryAfter;
    }
  }
  LB.ApiError = ApiError;

  LB.apiUrl = (path) => LB.state.config.ingest_url + "/api/v1" + path;

  /* fetch against ingest with the token; resolves {data, text, headers}, rejects with ApiError. */
  LB.api = async (path, options) => {
    const opts = options || {};
    const headers = { Authorization: "Bearer " + LB.state.token };
    if (opts.body !== undefined) headers["Content-Type"] = "application/json";
    let response;
    try {
      response = await fetch(LB.apiUrl(path), {
        method: opts.method || "GET",
        headers,
        body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
        signal: opts.signal,
        cache: "no-store",
      });
    } catch (e) {
      if (e && e.name === "AbortError") throw e;
      throw new ApiError(0, "network", String((e && e.message) || e));
    }
    if (response.ok && opts.binary) return { data: await response.arrayBuffer(), text: "", headers: response.headers };
    const text = await response.text();
    if (!response.ok) {
      let code = "http_" + response.status;
      let message = text.slice(0, 500) || response.statusText;
      try {
        const body = JSON.parse(text);
        if (body && body.error) {
          code = body.error.code || code;
          message = body.error.message || message;
        }
      } catch (e) {
        /* not JSON: keep the text */
      }
      const retry = Number(response.headers.get("Retry-After"));
      if (response.status === 401) LB.emit("unauthorized", message);
      throw new ApiError(response.status, code, message, isFinite(retry) && retry > 0 ? retry : null);
    }
    let data = null;
    if (opts.raw !== true && text) {
      try {
        data = JSON.parse(text);
      } catch (e) {
        data = null;
      }
    }
    return { data, text, headers: response.headers };
  };

  /* Plain words for an error of the API or the store, in the current language. */
  LB.describeError = (err) => {
    if (!err) return "";
    if (!(err instanceof ApiError)) return LB.t("err_unexpected", { message: String(err.message || err) });
    const message = err.message || "";
    switch (err.status) {
      case 0:
        return LB.t("err_network", { url: LB.state.config.ingest_url, message });
      case 400:
        return LB.t("err_400", { message });
      case 401:
        return LB.t("err_401", { message });
      case 403:
        return LB.t("err_403", { message });
      case 404:
        return LB.t("err_404", { message });
      case 409:
        return LB.t("err_409", { message });
      case 413:
        return LB.t("err_413", { message });
      case 429: {
        if (!err.retryAfter) return LB.t("err_429", { message, wait: "?", at: "?" });
        const at = new Date(Date.now() + err.retryAfter * 1000);
        return LB.t("err_429", { message, wait: LB.fmtDuration(err.retryAfter), at: at.toLocaleTimeString() });
      }
      case 503:
        return LB.t("err_503", { message });
      default:
        if (err.status >= 500) return LB.t("err_500", { status: err.status, message });
        return LB.t("err_other", { status: err.status, message });
    }
  };

  /* A message box: kind is "error" | "ok" | "info" | "warn"; returns the element. */
  LB.notice = (kind, text, extra) =>
    LB.h("div", { class: "lb-notice lb-" + kind, role: kind === "error" ? "alert" : "status" }, text, extra || null);

  LB.loaded.core = true;
})();
