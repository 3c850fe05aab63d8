/* The Leaderboard tab: completed submissions ranked per dataset by a chosen metric (higher is better),
 * best run per user or every run, with method, description, time and a link to the MLflow run. */
(function () {
  "use strict";
  const LB = (window.LB = window.LB || {});
  LB.loaded = LB.loaded || {};
  const h = (...a) => LB.h(...a);
  const tx = (...a) => LB.tx(...a);

  const S = { board: null, error: null, loading: false, completed: -1, seq: 0 };
  let ui = null;

  async function load() {
    if (!ui || !LB.state.token) {
      render();
      return;
    }
    const seq = ++S.seq;
    S.loading = true;
    renderState();
    const query = new URLSearchParams({ metric: ui.metric.value.trim() || LB.state.config.default_metric || "image_AUROC", best_per_user: ui.best.checked ? "true" : "false" });
    if (ui.dataset.value) query.set("dataset", ui.dataset.value);
    try {
      const { data } = await LB.api("/leaderboard?" + query.toString());
      if (seq !== S.seq) return;
      S.board = data;
      S.error = null;
    } catch (err) {
      if (seq !== S.seq) return;
      S.error = LB.describeError(err);
    } finally {
      if (seq === S.seq) S.loading = false;
    }
    render();
  }
  LB.refreshBoard = load;

  function renderState() {
    LB.fill(ui.state, S.loading ? LB.spinner() : null, S.loading ? LB.t("loading") : null);
  }

  function fillDatasets(datasets) {
    const current = ui.dataset.value;
    const options = [h("option", { value: "" }, LB.t("all_datasets"))].concat(datasets.map((d) => h("option", { value: d }, d)));
    ui.dataset.replaceChildren(...options);
    ui.dataset.value = datasets.includes(current) ? current : "";
  }

  function fillMetrics(entries) {
    const names = new Set(["image_AUROC", "image_F1Score"]);
    for (const e of entries) for (const n of Object.keys(e.metrics || {})) names.add(n);
    ui.metricList.replaceChildren(...[...names].sort().map((n) => h("option", { value: n })));
  }

  function table(metric, entries) {
    const others = [];
    for (const e of entries) for (const n of Object.keys(e.metrics || {})) if (n !== metric && !others.includes(n) && others.length < 2) others.push(n);
    const cell = (label, ...content) => h("td", { dataset: { label } }, ...content);
    const rows = entries.map((e, i) =>
      h(
        "tr",
        { class: "lb-rank-" + (i + 1), dataset: { id: e.submission_id } },
        cell("#", h("b", { class: "lb-rank" }, String(i + 1))),
        cell(LB.t("col_user"), e.user),
        cell(LB.t("col_method_desc"), h("div", null, e.method || "—"), e.description ? h("div", { class: "lb-hint lb-desc" }, e.description) : null),
        cell(metric + " ↑", h("b", { class: "lb-value" }, LB.fmtMetric(e.value))),
        others.map((n) => cell(n, LB.fmtMetric((e.metrics || {})[n]))),
        cell(LB.t("col_submitted"), h("span", { title: e.submitted_at }, LB.fmtTime(e.submitted_at)), h("div", { class: "lb-hint" }, h("code", { class: "lb-id" }, e.submission_id))),
        cell("MLflow", e.mlflow_run_url ? h("a", { class: "lb-link", href: e.mlflow_run_url, target: "_blank", rel: "noopener" }, LB.t("mlflow_run") + " ↗") : "—")
      )
    );
    return h(
      "table",
      { class: "lb-table lb-board lb-cards" },
      h("thead", null, h("tr", null, h("th", null, "#"), h("th", null, LB.t("col_user")), h("th", null, LB.t("col_method_desc")), h("th", { class: "lb-sorted", title: LB.t("higher_better") }, metric + " ↑"), others.map((n) => h("th", null, n)), h("th", null, LB.t("col_submitted")), h("th", null, "MLflow"))),
      h("tbody", null, rows)
    );
  }

  function render() {
    if (!ui) return;
    renderState();
    if (!LB.state.token) {
      ui.result.replaceChildren(LB.notice("info", LB.t("why_token")));
      return;
    }
    if (S.error) {
      ui.result.replaceChildren(LB.notice("error", S.error));
      return;
    }
    const board = S.board;
    if (!board) return;
    fillDatasets(board.datasets || []);
    fillMetrics(board.entries || []);
    const groups = new Map();
    for (const e of board.entries || []) {
      const key = e.dataset || LB.t("no_dataset");
      if (!groups.has(key)) groups.set(key, []);
      groups.get(key).push(e);
    }
    const note = h("p", { class: "lb-hint", id: "lb-board-note" }, LB.t("ranked_by", { metric: board.metric }), " ", h("b", { class: "lb-arrow" }, "↑"), " ", LB.t("higher_better"), " · ", LB.t(ui.best.checked ? "best_per_user_note" : "all_runs_note"));
    if (!groups.size) {
      ui.result.replaceChildren(note, LB.notice("info", LB.t("board_empty", { metric: board.metric })));
      return;
    }
    const sections = [...groups.entries()].map(([dataset, entries]) =>
      h("section", { class: "lb-board-group", dataset: { dataset } }, h("h3", null, LB.t("dataset"), ": ", h("span", { class: "lb-dataset-name" }, dataset), h("span", { class: "lb-hint" }, " · " + LB.t("n_entries", { n: entries.length }))), h("div", { class: "lb-table-wrap" }, table(board.metric, entries)))
    );
    ui.result.replaceChildren(note, ...sections);
  }

  LB.mountBoard = (panel) => {
    const config = LB.state.config;
    ui = {};
    ui.dataset = h("select", { id: "lb-board-dataset", onchange: load }, h("option", { value: "" }, LB.t("all_datasets")));
    ui.metricList = h("datalist", { id: "lb-metric-names" });
    ui.metric = h("input", { id: "lb-board-metric", type: "text", list: "lb-metric-names", value: config.default_metric || "image_AUROC", onchange: load, spellcheck: false });
    ui.best = h("input", { type: "radio", name: "lb-board-mode", id: "lb-board-best", checked: true, onchange: load });
    ui.all = h("input", { type: "radio", name: "lb-board-mode", id: "lb-board-all", onchange: load });
    ui.state = h("span", { class: "lb-refresh", id: "lb-board-state" });
    ui.result = h("div", { id: "lb-board-result" });
    const links = [h("a", { class: "lb-link", href: config.mlflow_url, target: "_blank", rel: "noopener", id: "lb-board-mlflow" }, tx("mlflow_ui"), " ↗")];
    if (config.store_console_url) links.push(h("a", { class: "lb-link", href: config.store_console_url, target: "_blank", rel: "noopener", id: "lb-board-store" }, tx("store_console"), " ↗"));
    panel.replaceChildren(
      h(
        "section",
        { class: "lb-card" },
        h("div", { class: "lb-card-head" }, h("h2", null, tx("board_title")), h("div", { class: "lb-actions" }, ...links)),
        h(
          "div",
          { class: "lb-controls" },
          h("label", { class: "lb-field" }, tx("dataset", { class: "lb-label" }), ui.dataset),
          h("label", { class: "lb-field" }, tx("metric", { class: "lb-label" }), ui.metric, ui.metricList),
          h("fieldset", { class: "lb-field lb-segmented" }, h("legend", { class: "lb-label" }, tx("show")), h("label", { class: "lb-inline" }, ui.best, tx("best_per_user")), h("label", { class: "lb-inline" }, ui.all, tx("all_runs"))),
          h("div", { class: "lb-field lb-field-end" }, h("button", { type: "button", class: "lb-btn", id: "lb-board-reload", onclick: load }, tx("refresh_now")), ui.state)
        ),
        ui.result
      )
    );
    LB.on("token", load);
    LB.on("lang", render);
    LB.on("tab", (name) => name === "board" && load());
    // Reload when a job of this user completes while the tab is open.
    LB.on("jobs", (list) => {
      const completed = (list || []).filter((j) => j.status === "completed").length;
      if (completed !== S.completed) {
        const first = S.completed < 0;
        S.completed = completed;
        if (!first && LB.currentTab === "board") load();
      }
    });
    render();
  };

  LB.loaded.board = true;
})();
