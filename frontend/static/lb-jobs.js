/* The Jobs tab: the user's submissions, reloaded every few seconds (5 s by default) without a page reload,
 * and a log view that follows a running job (GET /submissions/{id}/logs?offset=N, X-Next-Offset). */
(function () {
  "use strict";
  const LB = (window.LB = window.LB || {});
  LB.loaded = LB.loaded || {};
  const h = (...a) => LB.h(...a);
  const tx = (...a) => LB.tx(...a);

  const ICONS = { pending: "⏳", running: "⏳", completed: "✅", failed: "❌", cancelled: "🚫" };
  const TERMINAL = new Set(["completed", "failed", "cancelled"]);
  const KEY_METRICS = ["image_AUROC", "image_F1Score", "pixel_AUROC"];
  const LOG_KEEP_CHARS = 2 * 1024 * 1024;
  LB.statusIcon = (status) => ICONS[status] || "•";
  LB.jobsById = new Map();

  const S = { list: null, next: null, error: null, loading: false, updatedAt: null, rows: new Map(), timer: 0, log: null };
  let ui = null;

  /* The first page is reloaded; older pages ("more": ?cursor=the last id shown) are kept as they were loaded. Ids
   * sort by creation time, so a kept job is one older than the reloaded page's last (none when that page is all). */
  const pageSize = () => LB.state.config.jobs_page_size || 50;
  function merge(data) {
    const first = data.submissions || [];
    const full = data.next_cursor !== null && data.next_cursor !== undefined;
    const oldest = first.length ? first[first.length - 1].submission_id : "";
    const kept = full ? (S.list || []).filter((j) => j.submission_id < oldest) : [];
    S.next = kept.length ? S.next : data.next_cursor || null;
    S.list = first.concat(kept);
  }

  /* One page of the caller's jobs: `apply` folds it into S.list; errors are shown, never thrown. */
  async function load(query, apply) {
    S.loading = true;
    renderMeta();
    try {
      apply((await LB.api("/submissions?limit=" + pageSize() + query)).data);
      S.error = null;
      LB.jobsById = new Map(S.list.map((j) => [j.submission_id, j]));
    } catch (err) {
      S.error = LB.describeError(err);
    } finally {
      S.loading = false;
    }
    render();
    LB.emit("jobs", S.list);
  }

  async function refresh() {
    if (!LB.state.token || S.loading) return;
    await load("", (data) => {
      merge(data);
      S.updatedAt = new Date();
    });
  }
  LB.refreshJobs = refresh;

  async function more() {
    if (!S.next || S.loading) return;
    await load("&cursor=" + encodeURIComponent(S.next), (data) => {
      const known = new Set(S.list.map((j) => j.submission_id));
      S.list = S.list.concat((data.submissions || []).filter((j) => !known.has(j.submission_id)));
      S.next = data.next_cursor || null;
    });
  }

  function schedule() {
    clearInterval(S.timer);
    S.timer = setInterval(() => {
      if (!document.hidden) refresh();
    }, LB.state.config.jobs_refresh_ms || 5000);
  }

  function keyMetrics(metrics) {
    const names = Object.keys(metrics || {});
    const chosen = KEY_METRICS.filter((n) => n in metrics);
    for (const n of names) if (chosen.length < 3 && !chosen.includes(n)) chosen.push(n);
    return chosen.map((n) => h("div", { class: "lb-metric" }, h("span", { class: "lb-metric-name" }, n), " ", h("b", null, LB.fmtMetric(metrics[n]))));
  }

  // The platform's own scores first, with their 95% intervals; what the job wrote of itself below, labelled so.
  function metricsCell(job) {
    const own = keyMetrics(job.metrics);
    const ownPart = own.length ? h("div", { class: "lb-self-reported" }, h("div", { class: "lb-hint" }, LB.t("self_reported")), ...own) : null;
    const scores = job.scores;
    if (!scores) return ownPart;
    const label = LB.t(scores.test_labels_public === false ? "verified" : "verified_public_labels");
    const shown = ["image_AUROC", "pixel_AUPRO"].filter((n) => scores[n]);
    const interval = (s) => h("span", { class: "lb-hint" }, " [" + LB.fmtMetric(s.ci_low) + ", " + LB.fmtMetric(s.ci_high) + "]");
    return h("div", null,
      h("div", { class: "lb-verified" }, h("div", { class: "lb-hint" }, label),
        ...shown.map((n) => h("div", { class: "lb-metric" }, h("span", { class: "lb-metric-name" }, n), " ", h("b", null, LB.fmtMetric(scores[n].value)), interval(scores[n])))),
      ownPart);
  }

  function duration(job) {
    if (job.duration_s !== null && job.duration_s !== undefined) return LB.fmtDuration(job.duration_s);
    if (job.status === "running" && job.started_at) return h("span", { class: "lb-live", dataset: { since: job.started_at } }, LB.fmtDuration((Date.now() - new Date(job.started_at)) / 1000));
    if (job.status === "pending") return h("span", { class: "lb-hint lb-live", dataset: { since: job.created_at, prefix: "waiting" } }, LB.t("waiting_for", { t: LB.fmtDuration((Date.now() - new Date(job.created_at)) / 1000) }));
    return "";
  }

  function row(job) {
    const meta = job.metadata || {};
    const live = !TERMINAL.has(job.status);
    const cell = (labelKey, ...content) => h("td", { dataset: { label: LB.t(labelKey) } }, ...content);
    return h(
      "tr",
      { class: "lb-job lb-job-" + job.status, dataset: { id: job.submission_id, status: job.status } },
      cell("col_status", h("span", { class: "lb-status lb-status-" + job.status }, h("span", { class: "lb-status-icon" }, LB.statusIcon(job.status)), " ", LB.t("status_" + job.status), job.status === "running" ? LB.spinner() : null)),
      cell("col_submission", h("code", { class: "lb-id" }, job.submission_id), job.error ? h("div", { class: "lb-why" }, job.error) : null),
      cell("col_submitted", h("span", { title: job.created_at }, LB.fmtTime(job.created_at)), h("div", { class: "lb-hint" }, LB.fmtAgo(job.created_at))),
      cell("col_duration", duration(job)),
      cell("col_method", h("div", null, meta.method || (job.params || {}).method || "—"), h("div", { class: "lb-hint" }, job.dataset || "")),
      cell("col_metrics", metricsCell(job)),
      cell(
        "col_actions",
        h("div", { class: "lb-row-actions" },
          h("button", { type: "button", class: "lb-btn lb-small lb-show-logs", onclick: () => LB.showLogs(job.submission_id) }, LB.t("show_logs")),
          live ? h("button", { type: "button", class: "lb-btn lb-small lb-quiet lb-cancel-job", onclick: () => cancel(job.submission_id) }, LB.t("cancel_job")) : null,
          live ? null : h("button", { type: "button", class: "lb-btn lb-small lb-quiet lb-delete-job", onclick: () => remove(job.submission_id) }, LB.t("delete_job")),
          job.mlflow_run_url ? h("a", { class: "lb-link", href: job.mlflow_run_url, target: "_blank", rel: "noopener" }, "MLflow ↗") : null,
          // The run's files in MLflow, through the port that shows them to their owner (and admins) only.
          job.mlflow_run_url ? h("a", { class: "lb-link lb-artifacts", href: job.mlflow_run_url + "/artifacts", target: "_blank", rel: "noopener" }, LB.t("artifacts") + " ↗") : null)
      )
    );
  }

  function render() {
    if (!ui) return;
    renderMeta();
    if (!LB.state.token) {
      ui.body.replaceChildren();
      ui.message.replaceChildren(LB.notice("info", LB.t("why_token")));
      ui.table.hidden = true;
      return;
    }
    LB.fill(ui.message, S.error ? LB.notice("error", S.error) : S.list && !S.list.length ? LB.notice("info", LB.t("no_jobs")) : null);
    if (!S.list) {
      if (!S.error) ui.message.replaceChildren(h("div", { class: "lb-phase" }, LB.spinner(), LB.t("loading")));
      return;
    }
    ui.table.hidden = !S.list.length;
    const fresh = new Map();
    const rows = S.list.map((job) => {
      const signature = JSON.stringify([job, LB.state.lang]);
      const old = S.rows.get(job.submission_id);
      const tr = old && old.signature === signature ? old.tr : row(job);
      fresh.set(job.submission_id, { signature, tr });
      return tr;
    });
    S.rows = fresh;
    ui.body.replaceChildren(...rows);
    ui.more.hidden = !S.next;
    renderLogHeader();
  }

  function renderMeta() {
    if (!ui) return;
    const every = Math.round((LB.state.config.jobs_refresh_ms || 5000) / 1000);
    const when = S.updatedAt ? LB.t("updated_at", { time: S.updatedAt.toLocaleTimeString(), n: every }) : "";
    ui.meta.replaceChildren(S.loading ? LB.spinner() : h("span", { class: S.error ? "lb-dot lb-dot-bad" : "lb-dot" }), h("span", { id: "lb-jobs-updated" }, S.loading ? LB.t("refreshing") : when));
  }

  function tick() {
    if (!ui) return;
    ui.body.querySelectorAll(".lb-live").forEach((el) => {
      const t = LB.fmtDuration((Date.now() - new Date(el.dataset.since)) / 1000);
      el.textContent = el.dataset.prefix ? LB.t("waiting_for", { t }) : t;
    });
  }

  async function cancel(id) {
    if (!window.confirm(LB.t("cancel_confirm", { id }))) return;
    try {
      await LB.api("/submissions/" + encodeURIComponent(id) + "/cancel", { method: "POST" });
    } catch (err) {
      S.error = LB.describeError(err);
    }
    refresh();
  }

  // A finished submission, for good: its files, results and MLflow run (ingest/deletion.py).
  async function remove(id) {
    if (!window.confirm(LB.t("delete_confirm", { id }))) return;
    try {
      await LB.api("/submissions/" + encodeURIComponent(id), { method: "DELETE" });
      S.list = (S.list || []).filter((j) => j.submission_id !== id); // also from an older page the refresh keeps
    } catch (err) {
      S.error = LB.describeError(err);
    }
    refresh();
  }

  /* ---- the log view ---- */
  function renderLogHeader() {
    const log = S.log;
    if (!ui || !log) return;
    const job = LB.jobsById.get(log.id);
    const status = log.status || (job && job.status) || "";
    const following = !log.done;
    ui.logTitle.replaceChildren(
      h("span", null, LB.t("log_of") + " "), h("code", null, log.id), " ",
      status ? h("span", { class: "lb-status lb-status-" + status, id: "lb-log-status" }, LB.statusIcon(status) + " " + LB.t("status_" + status)) : null
    );
    LB.fill(ui.logState, following ? LB.spinner() : null, h("span", null, following ? LB.t("log_following") : LB.t("log_end")));
  }

  function appendLog(text) {
    const log = S.log;
    const pre = ui.logText;
    const atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 30;
    log.text += text;
    if (log.text.length > LOG_KEEP_CHARS) {
      log.text = log.text.slice(log.text.length - LOG_KEEP_CHARS);
      log.trimmed = true;
    }
    pre.textContent = (log.trimmed ? LB.t("log_trimmed") + "\n" : "") + log.text;
    if (atBottom || ui.follow.checked) pre.scrollTop = pre.scrollHeight;
  }

  async function followLog(log) {
    const decoder = new TextDecoder("utf-8");
    while (S.log === log) {
      let chunk = "";
      try {
        const res = await LB.api("/submissions/" + encodeURIComponent(log.id) + "/logs?offset=" + log.offset, { binary: true });
        chunk = decoder.decode(res.data, { stream: true });
        log.offset = Number(res.headers.get("X-Next-Offset")) || log.offset + res.data.byteLength;
        log.status = res.headers.get("X-Job-Status") || log.status;
        log.error = null;
        if (S.log !== log) return;
        if (chunk) appendLog(chunk);
        else if (!log.text && !log.trimmed) ui.logText.textContent = TERMINAL.has(log.status) ? LB.t("log_empty") : LB.t("log_waiting");
        if (TERMINAL.has(log.status) && !res.data.byteLength) log.done = true;
      } catch (err) {
        log.error = LB.describeError(err);
        ui.logError.replaceChildren(LB.notice("error", log.error));
        if (err.status === 404 || err.status === 401) log.done = true;
      }
      if (!log.error) ui.logError.replaceChildren();
      renderLogHeader();
      if (log.done) return;
      if (!chunk || chunk.length < 512 * 1024) await new Promise((r) => setTimeout(r, LB.state.config.log_poll_ms || 2000));
    }
  }

  LB.showLogs = (id) => {
    LB.showTab("jobs");
    S.log = { id, offset: 0, text: "", status: null, done: false, trimmed: false };
    ui.logs.hidden = false;
    ui.logText.textContent = LB.t("loading");
    ui.logError.replaceChildren();
    renderLogHeader();
    ui.logs.scrollIntoView({ block: "nearest" });
    followLog(S.log);
  };

  function closeLogs() {
    S.log = null;
    ui.logs.hidden = true;
  }

  LB.mountJobs = (panel) => {
    ui = {};
    ui.meta = h("div", { class: "lb-refresh", id: "lb-jobs-refresh", "aria-live": "polite" });
    ui.message = h("div", { id: "lb-jobs-message" });
    ui.body = h("tbody", { id: "lb-jobs-body" });
    ui.more = h("button", { type: "button", class: "lb-btn lb-small lb-more", id: "lb-jobs-more", hidden: true, onclick: more }, tx("jobs_more"));
    const head = ["col_status", "col_submission", "col_submitted", "col_duration", "col_method", "col_metrics", "col_actions"];
    ui.table = h("table", { class: "lb-table lb-jobs lb-cards", id: "lb-jobs-table", hidden: true }, h("thead", null, h("tr", null, head.map((k) => h("th", null, tx(k))))), ui.body);
    ui.logTitle = h("h3", { class: "lb-log-title", id: "lb-log-title" });
    ui.logState = h("div", { class: "lb-refresh", id: "lb-log-state" });
    ui.logText = h("pre", { class: "lb-log", id: "lb-log-text", tabindex: "0" });
    ui.logError = h("div");
    ui.follow = h("input", { type: "checkbox", checked: true, id: "lb-log-follow" });
    ui.logs = h(
      "section",
      { class: "lb-card lb-logs", id: "lb-logs", hidden: true },
      h("div", { class: "lb-card-head" }, ui.logTitle, h("div", { class: "lb-actions" }, h("label", { class: "lb-inline" }, ui.follow, tx("log_autoscroll")), h("button", { type: "button", class: "lb-btn lb-small", id: "lb-log-close", onclick: closeLogs }, tx("close")))),
      ui.logState,
      ui.logError,
      ui.logText
    );
    panel.replaceChildren(
      h("section", { class: "lb-card" },
        h("div", { class: "lb-card-head" }, h("h2", null, tx("jobs_title")), h("div", { class: "lb-actions" }, ui.meta, h("button", { type: "button", class: "lb-btn lb-small", id: "lb-jobs-reload", onclick: refresh }, tx("refresh_now")))),
        h("p", { class: "lb-hint" }, tx("jobs_hint")),
        ui.message,
        h("div", { class: "lb-table-wrap" }, ui.table),
        ui.more),
      ui.logs
    );
    render();
    schedule();
    setInterval(tick, 1000);
    LB.on("token", () => { S.list = null; S.next = null; S.rows = new Map(); render(); refresh(); });
    LB.on("submitted", () => { refresh(); setTimeout(refresh, 1500); });
    LB.on("lang", render);
    refresh();
  };

  LB.loaded.jobs = true;
})();
