/* The page's frame: title and links, the API token (kept in localStorage), the language toggle and the tabs.
 * LB.start(element, props) is called by the Gradio HTML component once every script is loaded. */
(function () {
  "use strict";
  const LB = (window.LB = window.LB || {});
  LB.loaded = LB.loaded || {};
  const h = (...a) => LB.h(...a);
  const tx = (...a) => LB.tx(...a);

  const TABS = [
    { name: "submit", label: "tab_submit", mount: () => LB.mountSubmit },
    { name: "jobs", label: "tab_jobs", mount: () => LB.mountJobs },
    { name: "board", label: "tab_board", mount: () => LB.mountBoard },
  ];
  let ui = null;

  LB.showTab = (name) => {
    if (!TABS.some((t) => t.name === name)) name = "submit";
    LB.currentTab = name;
    for (const tab of TABS) {
      const selected = tab.name === name;
      ui.tabs[tab.name].setAttribute("aria-selected", String(selected));
      ui.tabs[tab.name].tabIndex = selected ? 0 : -1;
      ui.panels[tab.name].hidden = !selected;
    }
    if (window.location.hash !== "#" + name) window.history.replaceState(null, "", "#" + name);
    LB.emit("tab", name);
  };

  function tokenStatus(kind, text) {
    ui.tokenStatus.className = "lb-token-status lb-" + kind;
    LB.fill(ui.tokenStatus, kind === "busy" ? LB.spinner() : null, text);
  }

  /* GET /api/v1/me: who the token belongs to. A 401 is said plainly and the token is not kept. */
  async function checkToken(token) {
    const previous = LB.state.token;
    LB.state.token = token;
    tokenStatus("busy", LB.t("token_checking"));
    try {
      const { data } = await LB.api("/me");
      LB.state.me = data;
      LB.setToken(token);
      tokenStatus("ok", "✓ " + LB.t("token_ok", { user: data.user, role: data.role }));
      ui.tokenInput.value = "";
      ui.tokenInput.placeholder = LB.t("token_saved_placeholder");
    } catch (err) {
      LB.state.me = null;
      if (err.status === 401) {
        LB.state.token = previous === token ? "" : previous;
        if (previous === token) LB.setToken("");
        tokenStatus("error", LB.describeError(err));
      } else {
        // The API is unreachable or failing: keep the token, say why it could not be checked.
        LB.setToken(token);
        tokenStatus("warn", LB.describeError(err));
      }
    }
  }

  function tokenBar() {
    ui.tokenInput = h("input", {
      type: "password",
      id: "lb-token",
      autocomplete: "off",
      spellcheck: false,
      placeholder: LB.state.token ? LB.t("token_saved_placeholder") : LB.t("token_placeholder"),
      onkeydown: (e) => e.key === "Enter" && save(),
    });
    const save = () => {
      const value = ui.tokenInput.value.trim();
      if (value) checkToken(value);
      else if (LB.state.token) checkToken(LB.state.token);
      else tokenStatus("error", LB.t("token_empty"));
    };
    const reveal = h("button", { type: "button", class: "lb-btn lb-small lb-quiet", id: "lb-token-reveal", onclick: () => {
      ui.tokenInput.type = ui.tokenInput.type === "password" ? "text" : "password";
    } }, "👁");
    reveal.setAttribute("aria-label", LB.t("token_reveal"));
    ui.tokenStatus = h("div", { class: "lb-token-status", id: "lb-token-status", role: "status", "aria-live": "polite" });
    return h(
      "div",
      { class: "lb-token-bar" },
      h("label", { class: "lb-token-label", for: "lb-token" }, tx("token_label")),
      h("div", { class: "lb-token-row" },
        ui.tokenInput,
        reveal,
        h("button", { type: "button", class: "lb-btn lb-primary lb-small", id: "lb-token-save", onclick: save }, tx("token_save")),
        h("button", { type: "button", class: "lb-btn lb-small lb-quiet", id: "lb-token-forget", onclick: () => {
          LB.setToken("");
          LB.state.me = null;
          ui.tokenInput.placeholder = LB.t("token_placeholder");
          tokenStatus("info", LB.t("token_forgotten"));
        } }, tx("token_forget"))),
      ui.tokenStatus
    );
  }

  function header(config) {
    const links = [h("a", { class: "lb-link", href: config.mlflow_url, target: "_blank", rel: "noopener", id: "lb-link-mlflow" }, tx("mlflow_ui"), " ↗")];
    if (config.store_console_url) links.push(h("a", { class: "lb-link", href: config.store_console_url, target: "_blank", rel: "noopener", id: "lb-link-store" }, tx("store_console"), " ↗"));
    links.push(h("a", { class: "lb-link", href: config.ingest_url + "/api/v1/openapi.json", target: "_blank", rel: "noopener" }, "API ↗"));
    const langs = [["en", "English"], ["ja", "日本語"]].map(([code, name]) =>
      h("button", { type: "button", class: "lb-lang", id: "lb-lang-" + code, "aria-pressed": String(LB.state.lang === code), onclick: () => LB.setLang(code) }, name)
    );
    ui.langs = langs;
    return h(
      "header",
      { class: "lb-header" },
      h("div", { class: "lb-title" }, h("h1", null, "LeadersBoard"), tx("tagline", { class: "lb-tagline" })),
      h("nav", { class: "lb-links" }, ...links, h("span", { class: "lb-langs", role: "group", "aria-label": "Language" }, ...langs))
    );
  }

  LB.start = (element, props) => {
    if (LB.started) return;
    LB.started = true;
    const config = Object.assign({}, props || {});
    LB.state.config = config;
    if (!LB.state.lang) LB.state.lang = config.language || "en";
    document.documentElement.lang = LB.state.lang;
    const root = element.querySelector("#lb-app") || element;
    ui = { tabs: {}, panels: {} };
    const nav = h("div", { class: "lb-tabs", role: "tablist" });
    const panels = [];
    for (const tab of TABS) {
      ui.tabs[tab.name] = h("button", { type: "button", role: "tab", class: "lb-tab", id: "lb-tab-" + tab.name, "aria-controls": "lb-panel-" + tab.name, onclick: () => LB.showTab(tab.name) }, tx(tab.label), tab.name === "jobs" ? h("span", { class: "lb-badge", id: "lb-jobs-badge", hidden: true }) : null);
      nav.append(ui.tabs[tab.name]);
      ui.panels[tab.name] = h("div", { class: "lb-panel", role: "tabpanel", id: "lb-panel-" + tab.name, hidden: true });
      panels.push(ui.panels[tab.name]);
    }
    root.replaceChildren(header(config), tokenBar(), nav, ...panels);
    root.removeAttribute("aria-busy");
    for (const tab of TABS) tab.mount()(ui.panels[tab.name]);
    LB.on("lang", () => {
      LB.applyI18n(root);
      ui.langs.forEach((b) => b.setAttribute("aria-pressed", String(b.id === "lb-lang-" + LB.state.lang)));
      ui.tokenInput.placeholder = LB.t(LB.state.token ? "token_saved_placeholder" : "token_placeholder");
      if (LB.state.me) tokenStatus("ok", "✓ " + LB.t("token_ok", { user: LB.state.me.user, role: LB.state.me.role }));
    });
    LB.on("unauthorized", (message) => tokenStatus("error", LB.describeError(new LB.ApiError(401, "unauthorized", message))));
    LB.on("jobs", (list) => {
      const active = (list || []).filter((j) => j.status === "pending" || j.status === "running").length;
      const badge = root.querySelector("#lb-jobs-badge");
      badge.hidden = !active;
      badge.textContent = active ? "⏳ " + active : "";
    });
    // "#jobs/<id>" (the link in each MLflow run's description): the Jobs tab with that job's log open.
    const [tab, job] = (window.location.hash || "#submit").slice(1).split("/");
    if (tab === "jobs" && job) LB.showLogs(decodeURIComponent(job));
    else LB.showTab(tab);
    if (LB.state.token) checkToken(LB.state.token);
    else tokenStatus("info", LB.t("token_needed"));
  };

  LB.loaded.main = true;
})();
