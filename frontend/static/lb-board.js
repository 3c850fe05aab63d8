/* The Leaderboard tab, two boards kept apart:
 * - verified: per benchmark (GET /leaderboard?benchmark=&metric=&category=), the platform's own scores ranked with
 *   their 95% intervals, rank ranges and ties with the leader, drawn as a plot (lb-plot.js) and listed in a table;
 *   every category can be expanded into its own board;
 * - self-reported: what jobs wrote in their metrics.json, per dataset, in its own labelled table; it never enters
 *   the verified ranking. */
(function () {
  "use strict";
  const LB = (window.LB = window.LB || {});
  LB.loaded = LB.loaded || {};
  const h = (...a) => LB.h(...a);
  const tx = (...a) => LB.tx(...a);

  const VERIFIED_LIMIT = 100;
  const S = { board: null, error: null, verified: null, verifiedError: null, benchmarks: [], categories: new Map(), open: new Set(), loading: false, completed: -1, seq: 0 };
  let ui = null;

  const mode = () => (ui.best.checked ? "best" : "all");

  function verifiedQuery(category) {
    const query = new URLSearchParams({ benchmark: ui.benchmark.value, metric: ui.vmetric.value || "image_AUROC", all: ui.best.checked ? "false" : "true", limit: String(VERIFIED_LIMIT) });
    if (category) query.set("category", category);
    return "/leaderboard?" + query.toString();
  }

  /* A verified board, or {missing: true} when the API has none for the query (404), or {error}. */
  async function fetchVerified(category) {
    try {
      const { data } = await LB.api(verifiedQuery(category));
      return data && data.kind === "verified" ? { board: data } : { missing: true };
    } catch (err) {
      return err.status === 404 ? { missing: true } : { error: LB.describeError(err) };
    }
  }

  async function fetchBenchmarkNames() {
    try {
      return ((await LB.api("/benchmarks")).data.benchmarks || []).map((b) => b.name);
    } catch (err) {
      return [];
    }
  }

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
    const [self, registered] = await Promise.all([LB.api("/leaderboard?" + query.toString()).then((r) => ({ data: r.data }), (err) => ({ error: err })), fetchBenchmarkNames()]);
    if (seq !== S.seq) return;
    S.board = self.data || null;
    S.error = self.error ? LB.describeError(self.error) : null;
    // Benchmarks with verified entries first (the self-reported answer names them), then every registered one.
    fillBenchmarks([...new Set([...((self.data && self.data.benchmarks) || []), ...registered])]);
    if (ui.benchmark.value) {
      const opened = [...S.open];
      const [average, ...categories] = await Promise.all([fetchVerified(null), ...opened.map((c) => fetchVerified(c))]);
      if (seq !== S.seq) return;
      S.verified = average;
      S.categories = new Map(opened.map((c, i) => [c, categories[i]]));
    } else {
      S.verified = null;
    }
    S.loading = false;
    render();
  }
  LB.refreshBoard = load;

  async function openCategory(name) {
    const seq = S.seq;
    S.categories.set(name, { loading: true });
    renderVerified();
    const found = await fetchVerified(name);
    if (seq !== S.seq || !S.open.has(name)) return;
    S.categories.set(name, found);
    renderVerified();
  }

  function renderState() {
    LB.fill(ui.state, S.loading ? LB.spinner() : null, S.loading ? LB.t("loading") : null);
  }

  function fillBenchmarks(names) {
    S.benchmarks = names;
    const current = ui.benchmark.value;
    ui.benchmark.replaceChildren(...names.map((n) => h("option", { value: n }, n)));
    ui.benchmark.value = names.includes(current) ? current : names[0] || "";
    ui.benchmark.disabled = !names.length;
  }

  function fillMetrics(names) {
    const current = ui.vmetric.value;
    if (!names.length || names.join() === [...ui.vmetric.options].map((o) => o.value).join()) return;
    ui.vmetric.replaceChildren(...names.map((n) => h("option", { value: n }, n)));
    ui.vmetric.value = names.includes(current) ? current : names[0];
  }

  const cell = (label, ...content) => h("td", { dataset: { label } }, ...content);
  const interval = (low, high) => "[" + LB.fmtMetric(low) + ", " + LB.fmtMetric(high) + "]";

  /* Beside the leader: ≈ when tied (the paired difference's 95% interval holds 0), else that difference. */
  function versusLeader(e, isLeader) {
    if (isLeader) return h("span", { class: "lb-leader" }, LB.t("leader"));
    if (e.tied_with_leader === true) return h("span", { class: "lb-tie", title: LB.t("tie_title") }, LB.t("tie_marker"));
    if (!e.diff_ci) return h("span", { class: "lb-hint" }, LB.t("no_pairing"));
    return h("span", { class: "lb-hint", title: LB.t("diff_title") }, "Δ " + LB.fmtMetric(e.diff_ci.value) + " " + interval(e.diff_ci.ci_low, e.diff_ci.ci_high));
  }

  function rankCell(e) {
    const [best, worst] = e.rank_range || [e.rank, e.rank];
    const range = best === worst ? null : h("span", { class: "lb-rank-range", title: LB.t("rank_range_title", { low: best, high: worst }) }, " (" + best + "–" + worst + ")");
    return cell(LB.t("col_rank"), h("b", { class: "lb-rank" }, String(e.rank)), range);
  }

  function verifiedTable(board) {
    const metric = board.metric + " ↑";
    const rows = (board.entries || []).map((e, i) => {
      const isLeader = board.offset === 0 && i === 0;
      return h(
        "tr",
        { class: "lb-rank-" + e.rank + (e.tied_with_leader ? " lb-tied" : ""), dataset: { id: e.submission_id, rank: String(e.rank) } },
        rankCell(e),
        cell(LB.t("col_user"), e.user),
        cell(LB.t("col_method_desc"), h("div", null, e.method || "—"), e.description ? h("div", { class: "lb-hint lb-desc" }, e.description) : null),
        cell(metric, h("b", { class: "lb-value" }, LB.fmtMetric(e.value)), h("div", { class: "lb-hint lb-ci" }, interval(e.ci_low, e.ci_high))),
        cell(LB.t("col_vs_leader"), versusLeader(e, isLeader)),
        cell(LB.t("col_submitted"), h("span", { title: e.submitted_at }, LB.fmtTime(e.submitted_at)), h("div", { class: "lb-hint" }, h("code", { class: "lb-id" }, e.submission_id))),
        cell("MLflow", e.mlflow_run_url ? h("a", { class: "lb-link", href: e.mlflow_run_url, target: "_blank", rel: "noopener" }, LB.t("mlflow_run") + " ↗") : "—")
      );
    });
    const heads = [LB.t("col_rank"), LB.t("col_user"), LB.t("col_method_desc"), metric + " " + LB.t("ci95"), LB.t("col_vs_leader"), LB.t("col_submitted"), "MLflow"];
    return h("table", { class: "lb-table lb-board lb-verified-table lb-cards" }, h("thead", null, h("tr", null, heads.map((t, i) => h("th", { class: i === 3 ? "lb-sorted" : null }, t)))), h("tbody", null, rows));
  }

  /* A board: its plot and its table, with what it leaves out said plainly. */
  function boardView(found, where) {
    if (!found || found.loading) return h("div", { class: "lb-phase" }, LB.spinner(), LB.t("loading"));
    if (found.error) return LB.notice("error", found.error);
    const board = found.board;
    if (found.missing || !board.entries.length) return LB.notice("info", LB.t("verified_empty", { benchmark: ui.benchmark.value, metric: ui.vmetric.value, where }));
    const notes = [];
    if (board.total > board.entries.length) notes.push(LB.t("more_entries", { shown: board.entries.length, total: board.total }));
    if (board.missing) notes.push(LB.t("missing_note", { n: board.missing, metric: board.metric }));
    return h("div", { class: "lb-verified-board", dataset: { category: board.category } },
      h("div", { class: "lb-plot-wrap" }, LB.intervalPlot(board)),
      h("div", { class: "lb-table-wrap" }, verifiedTable(board)),
      notes.length ? h("p", { class: "lb-hint" }, notes.join(" ")) : null);
  }

  function categoryDetails(board) {
    return (board.categories || []).map((name) => {
      const open = S.open.has(name);
      return h("details", { class: "lb-board-category", dataset: { category: name }, open, ontoggle: (ev) => {
        if (ev.target.open && !S.open.has(name)) {
          S.open.add(name);
          openCategory(name);
        } else if (!ev.target.open) S.open.delete(name);
      } }, h("summary", null, LB.t("category"), ": ", h("b", null, name)), open ? boardView(S.categories.get(name), name) : null);
    });
  }

  function labelOf(board) {
    return LB.t(board.label === "verified" ? "verified" : "verified_public_labels");
  }

  function renderVerified() {
    if (!ui) return;
    const found = S.verified;
    if (!S.benchmarks.length) {
      ui.verified.replaceChildren(LB.notice("info", LB.t("no_benchmarks")));
      return;
    }
    if (!found || !found.board) {
      ui.verified.replaceChildren(boardView(found || { loading: true }, LB.t("average")));
      return;
    }
    const board = found.board;
    fillMetrics(board.metrics || []);
    const note = h("p", { class: "lb-hint", id: "lb-verified-note" },
      h("span", { class: "lb-verified-label" }, labelOf(board)), " · ", board.benchmark + " v" + board.benchmark_version, " · ",
      LB.t("ranked_by", { metric: board.metric }), " ", h("b", { class: "lb-arrow" }, "↑"), " ", LB.t("higher_better"), " · ",
      LB.t(mode() === "best" ? "best_per_user_note" : "all_runs_note"), " · ", LB.t("verified_hint", { resamples: board.resamples, confidence: Math.round(board.confidence * 100) }));
    const categories = board.categories && board.categories.length ? h("div", { id: "lb-board-categories" }, h("h4", null, LB.t("categories_title")), categoryDetails(board)) : null;
    ui.verified.replaceChildren(note, h("h4", null, LB.t("category"), ": ", LB.t("average")), boardView(found, LB.t("average")), categories);
  }

  function selfTable(metric, entries) {
    const others = [];
    for (const e of entries) for (const n of Object.keys(e.metrics || {})) if (n !== metric && !others.includes(n) && others.length < 2) others.push(n);
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
      { class: "lb-table lb-board lb-self-table lb-cards" },
      h("thead", null, h("tr", null, h("th", null, "#"), h("th", null, LB.t("col_user")), h("th", null, LB.t("col_method_desc")), h("th", { class: "lb-sorted", title: LB.t("higher_better") }, metric + " ↑"), others.map((n) => h("th", null, n)), h("th", null, LB.t("col_submitted")), h("th", null, "MLflow"))),
      h("tbody", null, rows)
    );
  }

  function fillDatasets(datasets) {
    const current = ui.dataset.value;
    const options = [h("option", { value: "" }, LB.t("all_datasets"))].concat(datasets.map((d) => h("option", { value: d }, d)));
    ui.dataset.replaceChildren(...options);
    ui.dataset.value = datasets.includes(current) ? current : "";
  }

  function fillSelfMetrics(entries) {
    const names = new Set(["image_AUROC", "image_F1Score"]);
    for (const e of entries) for (const n of Object.keys(e.metrics || {})) names.add(n);
    ui.metricList.replaceChildren(...[...names].sort().map((n) => h("option", { value: n })));
  }

  function renderSelf() {
    if (S.error) {
      ui.result.replaceChildren(LB.notice("error", S.error));
      return;
    }
    const board = S.board;
    if (!board) return;
    fillDatasets(board.datasets || []);
    fillSelfMetrics(board.entries || []);
    const groups = new Map();
    for (const e of board.entries || []) {
      const key = e.dataset || LB.t("no_dataset");
      if (!groups.has(key)) groups.set(key, []);
      groups.get(key).push(e);
    }
    const note = h("p", { class: "lb-hint", id: "lb-board-note" }, LB.t("ranked_by", { metric: board.metric }), " ", h("b", { class: "lb-arrow" }, "↑"), " ", LB.t("higher_better"), " · ", LB.t(mode() === "best" ? "best_per_user_note" : "all_runs_note"));
    if (!groups.size) {
      ui.result.replaceChildren(note, LB.notice("info", LB.t("board_empty", { metric: board.metric })));
      return;
    }
    const sections = [...groups.entries()].map(([dataset, entries]) =>
      h("section", { class: "lb-board-group", dataset: { dataset } }, h("h4", null, LB.t("dataset"), ": ", h("span", { class: "lb-dataset-name" }, dataset), h("span", { class: "lb-hint" }, " · " + LB.t("n_entries", { n: entries.length }))), h("div", { class: "lb-table-wrap" }, selfTable(board.metric, entries)))
    );
    ui.result.replaceChildren(note, ...sections);
  }

  function render() {
    if (!ui) return;
    renderState();
    if (!LB.state.token) {
      ui.verified.replaceChildren(LB.notice("info", LB.t("why_token")));
      ui.result.replaceChildren();
      return;
    }
    renderVerified();
    renderSelf();
  }

  LB.mountBoard = (panel) => {
    const config = LB.state.config;
    ui = {};
    const reload = () => load();
    ui.benchmark = h("select", { id: "lb-board-benchmark", onchange: () => { S.open.clear(); load(); } });
    ui.vmetric = h("select", { id: "lb-board-vmetric", onchange: reload }, h("option", { value: "image_AUROC" }, "image_AUROC"));
    ui.dataset = h("select", { id: "lb-board-dataset", onchange: reload }, h("option", { value: "" }, LB.t("all_datasets")));
    ui.metricList = h("datalist", { id: "lb-metric-names" });
    ui.metric = h("input", { id: "lb-board-metric", type: "text", list: "lb-metric-names", value: config.default_metric || "image_AUROC", onchange: reload, spellcheck: false });
    ui.best = h("input", { type: "radio", name: "lb-board-mode", id: "lb-board-best", checked: true, onchange: reload });
    ui.all = h("input", { type: "radio", name: "lb-board-mode", id: "lb-board-all", onchange: reload });
    ui.state = h("span", { class: "lb-refresh", id: "lb-board-state" });
    ui.verified = h("div", { id: "lb-verified-result" });
    ui.result = h("div", { id: "lb-board-result" });
    const links = [h("a", { class: "lb-link", href: config.mlflow_url, target: "_blank", rel: "noopener", id: "lb-board-mlflow" }, tx("mlflow_ui"), " ↗")];
    if (config.store_console_url) links.push(h("a", { class: "lb-link", href: config.store_console_url, target: "_blank", rel: "noopener", id: "lb-board-store" }, tx("store_console"), " ↗"));
    const field = (key, control) => h("label", { class: "lb-field" }, tx(key, { class: "lb-label" }), control);
    panel.replaceChildren(
      h(
        "section",
        { class: "lb-card" },
        h("div", { class: "lb-card-head" }, h("h2", null, tx("board_title")), h("div", { class: "lb-actions" }, ...links)),
        h(
          "div",
          { class: "lb-controls" },
          h("fieldset", { class: "lb-field lb-segmented" }, h("legend", { class: "lb-label" }, tx("show")), h("label", { class: "lb-inline" }, ui.best, tx("best_per_user")), h("label", { class: "lb-inline" }, ui.all, tx("all_runs"))),
          h("div", { class: "lb-field lb-field-end" }, h("button", { type: "button", class: "lb-btn", id: "lb-board-reload", onclick: reload }, tx("refresh_now")), ui.state)
        ),
        h("section", { class: "lb-board-part lb-board-verified", id: "lb-board-verified" },
          h("h3", null, "✔ ", tx("verified_title")),
          h("div", { class: "lb-controls" }, field("benchmark", ui.benchmark), field("metric", ui.vmetric)),
          ui.verified),
        h("section", { class: "lb-board-part lb-board-self", id: "lb-board-self" },
          h("h3", null, tx("self_title")),
          h("p", { class: "lb-hint" }, tx("self_hint")),
          h("div", { class: "lb-controls" }, field("dataset", ui.dataset), h("label", { class: "lb-field" }, tx("metric", { class: "lb-label" }), ui.metric, ui.metricList)),
          ui.result)
      )
    );
    LB.on("token", reload);
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
