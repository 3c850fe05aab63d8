/* The Submit tab: pick files or a folder, choose entrypoint, config and (optionally) an official benchmark, check
 * the metadata JSON as it is typed, and upload straight to the store with a progress bar per file and overall
 * (LB.UploadRun, lb-upload.js). */
(function () {
  "use strict";
  const LB = (window.LB = window.LB || {});
  LB.loaded = LB.loaded || {};
  const h = (...a) => LB.h(...a);
  const tx = (...a) => LB.tx(...a);

  const SAFE_PATH = /^[A-Za-z0-9._][A-Za-z0-9._ +\-/]{0,255}$/;
  const SKIPPED = new Set(["__pycache__", ".git", ".venv", "output", ".ipynb_checkpoints"]);
  const MAX_FILES = 200;
  const CONFIG_EXT = /\.(ya?ml|json|toml|ini|cfg)$/i;

  const S = { files: new Map(), run: null, metadataOk: true, metadata: {}, submitted: null, error: null, frame: 0, benchmarks: [], benchmarkError: null };
  let ui = null;

  function pathProblem(path) {
    if (!SAFE_PATH.test(path)) return LB.t("path_bad_chars");
    if (path.split("/").some((p) => p === "" || p === "." || p === "..")) return LB.t("path_bad_parts");
    return "";
  }

  /* Files from an <input> or a drop: a folder's top directory is left out, as `leadersboard submit DIR` does. */
  function addFiles(list, fromFolder) {
    for (const file of list) {
      const relative = file.webkitRelativePath || "";
      const path = relative ? relative.split("/").slice(1).join("/") || file.name : file.name;
      // Hidden files and caches of a folder are left out, as the CLI does (leadersboard/client.py).
      if (fromFolder && path.split("/").some((p) => p.startsWith(".") || SKIPPED.has(p))) continue;
      S.files.set(path, file);
    }
    S.submitted = null;
    S.error = null;
    renderFiles();
  }

  function pickDefault(select, names, preferred) {
    const current = select.value;
    select.replaceChildren(...names.map((n) => h("option", { value: n }, n)));
    if (names.includes(current)) select.value = current;
    else if (names.includes(preferred)) select.value = preferred;
    else if (names.length) select.value = names[0];
  }

  function renderFiles() {
    const names = [...S.files.keys()].sort();
    const rows = names.map((path) => {
      const file = S.files.get(path);
      const problem = pathProblem(path);
      return h(
        "tr",
        { class: problem ? "lb-bad" : "" },
        h("td", { class: "lb-path" }, path, problem ? h("div", { class: "lb-why" }, problem) : null),
        h("td", { class: "lb-num" }, LB.fmtBytes(file.size)),
        h("td", null, h("button", { class: "lb-icon-btn", type: "button", title: LB.t("remove"), "aria-label": LB.t("remove") + " " + path, onclick: () => { S.files.delete(path); renderFiles(); } }, "✕"))
      );
    });
    ui.fileBody.replaceChildren(...rows);
    ui.fileTable.hidden = names.length === 0;
    ui.empty.hidden = names.length > 0;
    const total = names.reduce((s, n) => s + S.files.get(n).size, 0);
    ui.summary.textContent = names.length ? LB.t("files_summary", { n: names.length, size: LB.fmtBytes(total) }) : "";
    const py = names.filter((n) => n.endsWith(".py"));
    pickDefault(ui.entrypoint, py, "main.py");
    const configs = names.filter((n) => CONFIG_EXT.test(n));
    pickDefault(ui.config, configs.length ? configs : names, "config.yaml");
    ui.entrypoint.disabled = !py.length;
    ui.config.disabled = !names.length;
    hashPicked(names);
    updateButton();
  }

  /* The checksums are computed as soon as the files are picked, while the form is filled in (lb-hash.js). */
  function hashPicked(names) {
    const picked = names.filter((path) => !pathProblem(path)).map((path) => [path, S.files.get(path)]);
    if (!(S.run && !S.run.finished)) LB.dropHashes(picked);
    for (const [path, file] of picked) if (LB.wantsHash(path, file.size)) LB.hashFile(path, file);
  }

  function checkMetadata() {
    const text = ui.metadata.value.trim();
    const out = ui.metaCheck;
    S.metadataOk = false;
    if (!text) {
      S.metadataOk = true;
      S.metadata = {};
      out.className = "lb-check";
      out.textContent = LB.t("meta_empty");
    } else {
      let value;
      try {
        value = JSON.parse(text);
      } catch (e) {
        out.className = "lb-check lb-bad";
        out.textContent = LB.t("meta_invalid", { message: e.message });
        updateButton();
        return;
      }
      if (value === null || typeof value !== "object" || Array.isArray(value)) {
        out.className = "lb-check lb-bad";
        out.textContent = LB.t("meta_not_object");
      } else {
        const wrong = ["method", "description", "dataset"].filter((k) => k in value && typeof value[k] !== "string");
        S.metadataOk = wrong.length === 0;
        S.metadata = value;
        out.className = "lb-check " + (S.metadataOk ? "lb-good" : "lb-bad");
        const shown = ["method", "description", "dataset"].filter((k) => typeof value[k] === "string").map((k) => k + ": " + value[k]);
        out.textContent = S.metadataOk ? "✓ " + LB.t("meta_ok") + (shown.length ? " — " + shown.join(", ") : "") : LB.t("meta_strings", { keys: wrong.join(", ") });
      }
    }
    updateButton();
  }

  /* The ready benchmarks (GET /api/v1/benchmarks: the latest version of each) fill the select; none = self-reported. */
  async function loadBenchmarks() {
    S.benchmarkError = null;
    if (LB.state.token) {
      try {
        S.benchmarks = (await LB.api("/benchmarks")).data.benchmarks || [];
      } catch (err) {
        S.benchmarks = [];
        S.benchmarkError = LB.describeError(err);
      }
    } else {
      S.benchmarks = [];
    }
    renderBenchmarks();
  }

  function renderBenchmarks() {
    if (!ui) return;
    const current = ui.benchmark.value;
    const options = S.benchmarks.map((b) => h("option", { value: b.name }, b.name + " v" + b.version));
    ui.benchmark.replaceChildren(h("option", { value: "" }, LB.t("benchmark_none")), ...options);
    ui.benchmark.value = S.benchmarks.some((b) => b.name === current) ? current : "";
    renderBenchmarkInfo();
  }

  function renderBenchmarkInfo() {
    const chosen = S.benchmarks.find((b) => b.name === ui.benchmark.value);
    const out = ui.benchmarkInfo;
    out.className = "lb-check" + (S.benchmarkError ? " lb-bad" : "");
    if (S.benchmarkError) {
      out.replaceChildren(LB.t("benchmark_load_failed", { message: S.benchmarkError }));
    } else if (!chosen) {
      out.replaceChildren(S.benchmarks.length || !LB.state.token ? "" : LB.t("benchmark_none_ready"));
    } else {
      const categories = Object.values(chosen.categories || {});
      const info = LB.t("benchmark_info", {
        name: chosen.name,
        version: chosen.version,
        categories: categories.length,
        test: categories.reduce((n, c) => n + c.test, 0),
        maps: categories.some((c) => c.masks) ? LB.t("benchmark_maps") : "",
        description: chosen.description || "",
      });
      out.replaceChildren(h("div", null, info), chosen.license ? h("div", null, LB.t("benchmark_license", { license: chosen.license })) : null);
    }
  }

  function blocker() {
    if (S.run && !S.run.finished) return LB.t("why_uploading");
    if (!LB.state.token) return LB.t("why_token");
    if (!S.files.size) return LB.t("why_files");
    if (S.files.size > MAX_FILES) return LB.t("why_too_many", { n: MAX_FILES });
    if ([...S.files.keys()].some(pathProblem)) return LB.t("why_paths");
    if (!ui.entrypoint.value) return LB.t("why_entrypoint");
    if (!ui.config.value) return LB.t("why_config");
    if (!S.metadataOk) return LB.t("why_metadata");
    return "";
  }

  function updateButton() {
    if (!ui) return;
    const why = blocker();
    ui.submit.disabled = Boolean(why);
    ui.why.textContent = why;
    ui.cancel.hidden = !(S.run && !S.run.finished);
  }

  const PHASES = { hashing: "phase_hashing", requesting: "phase_requesting", uploading: "phase_uploading", manifest: "phase_manifest", done: "phase_done" };

  function bar(fraction, kind) {
    const pct = Math.max(0, Math.min(100, Math.round(fraction * 1000) / 10));
    return h("div", { class: "lb-bar " + (kind || ""), role: "progressbar", "aria-valuemin": "0", "aria-valuemax": "100", "aria-valuenow": String(pct) }, h("div", { class: "lb-bar-fill", style: "width:" + pct + "%" }));
  }

  function renderProgress() {
    clearTimeout(S.frame);
    S.frame = 0;
    S.renderedAt = performance.now();
    const run = S.run;
    // Nothing to show yet, or refused before any byte was sent (the error says why).
    if (!run || (run.failed && !run.submissionId)) {
      ui.progress.replaceChildren();
      return;
    }
    const total = run.total || 1;
    const sent = run.sent;
    const busy = !run.finished;
    const seconds = run.uploadStartedAt ? (performance.now() - run.uploadStartedAt) / 1000 : 0;
    const rate = seconds > 0.5 ? sent / seconds : 0;
    let phaseText = LB.t(PHASES[run.phase] || "phase_hashing");
    if (run.phase === "hashing") {
      const f = run.files.find((x) => x.state === "hashing");
      if (f) phaseText = LB.t("phase_hashing_file", { path: f.path, pct: Math.round((100 * f.hashed) / (f.size || 1)) });
    }
    if (run.failed) phaseText = LB.t("phase_failed");
    const hashing = run.hashing;
    const stats = LB.t("overall", { sent: LB.fmtBytes(sent), total: LB.fmtBytes(run.total), pct: Math.floor((100 * sent) / total) }) + (rate && busy && run.phase === "uploading" ? " — " + LB.fmtBytes(rate) + "/s" + (rate ? ", " + LB.t("eta", { t: LB.fmtDuration((run.total - sent) / rate) }) : "") : "");
    const rows = run.files.map((f) =>
      h(
        "div",
        { class: "lb-file-progress lb-state-" + f.state, dataset: { path: f.path } },
        h("div", { class: "lb-file-line" }, h("span", { class: "lb-path" }, f.path), h("span", { class: "lb-file-state" }, LB.t("state_" + f.state)), h("span", { class: "lb-num" }, LB.fmtBytes(Math.min(f.sent, f.size)) + " / " + LB.fmtBytes(f.size))),
        bar(f.state === "hashing" ? f.hashed / (f.size || 1) : f.size ? f.sent / f.size : f.state === "done" || f.state === "present" ? 1 : 0, f.state === "hashing" ? "lb-bar-hash" : ""),
        f.note ? h("div", { class: "lb-why" }, f.note) : null
      )
    );
    ui.progress.replaceChildren(
      h("div", { class: "lb-phase", "aria-live": "polite" }, busy ? LB.spinner() : null, h("span", { id: "lb-phase-text" }, phaseText)),
      hashStep(hashing),
      h("div", { class: "lb-overall" }, bar(sent / total, "lb-bar-big"), h("div", { class: "lb-overall-text", id: "lb-overall-text" }, stats)),
      h("div", { class: "lb-file-progress-list" }, rows)
    );
  }

  /* The hashing step on its own line, with its speed; hashes from the cache (unchanged files) cost nothing. */
  function hashStep(x) {
    if (!x.files && !x.cached) return null;
    const rate = x.rate ? LB.fmtBytes(x.rate) + "/s" : "…";
    const parts = [];
    if (x.files && x.finished) parts.push(LB.t("hash_step_done", { size: LB.fmtBytes(x.total), t: x.seconds < 60 ? x.seconds.toFixed(1) + " s" : LB.fmtDuration(x.seconds), rate }));
    else if (x.files) parts.push(LB.t("hash_step_running", { done: LB.fmtBytes(x.done), size: LB.fmtBytes(x.total), pct: Math.floor((100 * x.done) / (x.total || 1)), rate }));
    if (x.cached) parts.push(LB.t("hash_step_cached", { n: x.cached }));
    return h("div", { class: "lb-hash-step", id: "lb-hash-step", dataset: { finished: String(x.finished) } }, parts.join(" "));
  }

  /* A few times a second is enough to read: rebuilding the display on every frame took CPU from the upload
   * itself (bench/README.md, "Web uploads"). */
  const PROGRESS_INTERVAL_MS = 250;
  function scheduleProgress() {
    if (S.frame) return;
    const wait = Math.max(0, (S.renderedAt || 0) + PROGRESS_INTERVAL_MS - performance.now());
    S.frame = setTimeout(() => requestAnimationFrame(renderProgress), wait);
  }

  function renderResult() {
    const box = ui.result;
    if (S.error) {
      box.replaceChildren(LB.notice("error", S.error));
      return;
    }
    if (!S.submitted) {
      box.replaceChildren();
      return;
    }
    const job = (LB.jobsById && LB.jobsById.get(S.submitted)) || null;
    const status = job ? h("span", { class: "lb-status lb-status-" + job.status }, LB.statusIcon(job.status) + " " + LB.t("status_" + job.status)) : h("span", { class: "lb-status" }, LB.spinner(), " " + LB.t("job_waiting"));
    const line = h(
      "div",
      { class: "lb-result-line" },
      h("span", { id: "lb-submitted-status" }, status),
      job && job.error ? h("span", { class: "lb-why" }, job.error) : null,
      h("button", { type: "button", class: "lb-btn", id: "lb-open-logs", onclick: () => LB.showLogs(S.submitted) }, LB.t("show_logs")),
      h("button", { type: "button", class: "lb-btn", onclick: () => LB.showTab("jobs") }, LB.t("open_jobs"))
    );
    const note = LB.notice("ok", LB.t("submitted", { id: S.submitted }), line);
    note.dataset.id = S.submitted;
    box.replaceChildren(note);
  }

  async function submit() {
    if (blocker()) return;
    const entries = [...S.files.keys()].sort().map((path) => ({ path, file: S.files.get(path) }));
    S.error = null;
    S.submitted = null;
    const run = new LB.UploadRun(entries, {
      entrypoint: ui.entrypoint.value,
      config: ui.config.value,
      metadata: S.metadata,
      benchmark: ui.benchmark.value,
      concurrency: LB.state.config.upload_concurrency,
      onUpdate: (r) => {
        scheduleProgress();
        LB.emit("upload-progress", { phase: r.phase, sent: r.sent, total: r.total });
      },
    });
    S.run = run;
    renderResult();
    updateButton();
    renderProgress();
    try {
      S.submitted = await run.run();
      LB.emit("submitted", S.submitted);
    } catch (err) {
      run.failed = true;
      S.error = err instanceof LB.StoreError ? LB.describeStoreError(err) : LB.describeError(err);
    } finally {
      run.finished = true;
      updateButton();
      renderProgress();
      renderResult();
    }
  }

  LB.mountSubmit = (panel) => {
    const filesInput = h("input", { type: "file", multiple: true, hidden: true, id: "lb-files-input", onchange: (e) => { addFiles(e.target.files, false); e.target.value = ""; } });
    const folderInput = h("input", { type: "file", multiple: true, hidden: true, id: "lb-folder-input", webkitdirectory: true, onchange: (e) => { addFiles(e.target.files, true); e.target.value = ""; } });
    ui = {};
    ui.fileBody = h("tbody");
    ui.fileTable = h("table", { class: "lb-table lb-files", id: "lb-file-table", hidden: true }, h("thead", null, h("tr", null, h("th", null, tx("col_file")), h("th", { class: "lb-num" }, tx("col_size")), h("th"))), ui.fileBody);
    ui.empty = h("p", { class: "lb-hint lb-empty" }, tx("no_files"));
    ui.summary = h("div", { class: "lb-summary", id: "lb-files-summary" });
    ui.entrypoint = h("select", { id: "lb-entrypoint", onchange: updateButton });
    ui.config = h("select", { id: "lb-config", onchange: updateButton });
    ui.benchmark = h("select", { id: "lb-benchmark", onchange: renderBenchmarkInfo });
    ui.benchmarkInfo = h("div", { class: "lb-check", id: "lb-benchmark-info", "aria-live": "polite" });
    ui.metadata = h("textarea", { id: "lb-metadata", rows: 4, spellcheck: false, dataset: { i18nPlaceholder: "meta_placeholder" }, placeholder: LB.t("meta_placeholder"), oninput: checkMetadata });
    ui.metaCheck = h("div", { class: "lb-check", id: "lb-metadata-check", "aria-live": "polite" });
    ui.submit = h("button", { type: "button", class: "lb-btn lb-primary", id: "lb-submit-btn", onclick: submit }, tx("submit"));
    ui.cancel = h("button", { type: "button", class: "lb-btn", id: "lb-cancel-upload", hidden: true, onclick: () => S.run && S.run.abort() }, tx("cancel_upload"));
    ui.why = h("span", { class: "lb-hint", id: "lb-submit-why" });
    ui.progress = h("div", { class: "lb-progress", id: "lb-progress" });
    ui.result = h("div", { id: "lb-submit-result" });
    const drop = h(
      "div",
      { class: "lb-drop", id: "lb-drop" },
      h("div", { class: "lb-drop-buttons" },
        h("button", { type: "button", class: "lb-btn", id: "lb-pick-files", onclick: () => filesInput.click() }, tx("pick_files")),
        h("button", { type: "button", class: "lb-btn", id: "lb-pick-folder", onclick: () => folderInput.click() }, tx("pick_folder")),
        h("button", { type: "button", class: "lb-btn lb-quiet", id: "lb-clear-files", onclick: () => { S.files.clear(); renderFiles(); } }, tx("clear"))),
      tx("drop_here", { class: "lb-hint" }),
      filesInput,
      folderInput
    );
    drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("lb-drag"); });
    drop.addEventListener("dragleave", () => drop.classList.remove("lb-drag"));
    drop.addEventListener("drop", (e) => { e.preventDefault(); drop.classList.remove("lb-drag"); addFiles(e.dataTransfer.files, false); });
    const field = (labelKey, control, hintKey) => h("label", { class: "lb-field" }, tx(labelKey, { class: "lb-label" }), control, hintKey ? tx(hintKey, { class: "lb-hint" }) : null);
    panel.replaceChildren(
      h("div", { class: "lb-grid" },
        h("section", { class: "lb-card" }, h("h2", null, tx("files_title")), tx("files_hint", { class: "lb-hint" }), drop, ui.empty, ui.fileTable, ui.summary),
        h("section", { class: "lb-card" }, h("h2", null, tx("settings_title")), field("entrypoint", ui.entrypoint, "entrypoint_hint"), field("config_file", ui.config, "config_hint"), field("benchmark", ui.benchmark, "benchmark_hint"), ui.benchmarkInfo, field("metadata", ui.metadata, null), ui.metaCheck)),
      h("section", { class: "lb-card lb-submit-card" }, h("div", { class: "lb-actions" }, ui.submit, ui.cancel, ui.why), ui.progress, ui.result)
    );
    renderFiles();
    checkMetadata();
    renderBenchmarks();
    loadBenchmarks();
    LB.on("token", () => { updateButton(); loadBenchmarks(); });
    LB.on("jobs", renderResult);
    LB.on("lang", () => { renderFiles(); checkMetadata(); renderBenchmarks(); renderProgress(); renderResult(); });
  };

  LB.loaded.submit = true;
})();
