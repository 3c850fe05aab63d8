/* Browser-direct upload of a submission: the same protocol as the CLI (leadersboard/upload.py, docs/uploads.md).
 *   1. hash zips and large files (sha256, lb-hash.js) so ingest can answer "present" for content already stored;
 *   2. POST /api/v1/submissions (declared paths and sizes) -> presigned uploads and the manifest;
 *   3. PUT each file straight to the store (XMLHttpRequest, upload progress events): one PUT, or a multipart
 *      upload (parts in parallel, retried, then the CompleteMultipartUpload XML), or nothing when "present";
 *      a file hashed with the native digest is sent from the bytes read for it (lb-hash.js), not read again;
 *   4. PUT the manifest body exactly as given: its bucket event starts the job.
 * No byte of a file goes to the page's server. */
(function () {
  "use strict";
  const LB = (window.LB = window.LB || {});
  LB.loaded = LB.loaded || {};

  const ATTEMPTS = 5;
  // As the CLI (leadersboard/upload.py): a failed connection or a 5xx is tried again, a 4xx never (it would be
  // refused again), nor a 200 carrying a permanent <Error>; transient codes a 200 may carry (a complete's):
  const TRANSIENT_CODES = new Set(["InternalError", "ServiceUnavailable", "SlowDown"]);
  const retryable = (err) => err.status === 0 || err.status >= 500;
  const MAX_SINGLE_PUT = 5 * 1024 * 1024 * 1024;

  class StoreError extends Error {
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
      this.path = ""; // the file it is about, once known
      this.attempts = 1;
    }
  }
  LB.StoreError = StoreError;

  class NoEtag extends Error {}

  function s3Error(status, text) {
    const code = (/<Code>([^<]*)<\/Code>/.exec(text || "") || [])[1] || "";
    const message = (/<Message>([^<]*)<\/Message>/.exec(text || "") || [])[1] || (text || "").slice(0, 200);
    return new StoreError(status, code, message);
  }

  function semaphore(limit) {
    let active = 0;
    const waiting = [];
    return async (fn) => {
      if (active >= limit) await new Promise((resolve) => waiting.push(resolve));
      active += 1;
      try {
        return await fn();
      } finally {
        active -= 1;
        const next = waiting.shift();
        if (next) next();
      }
    };
  }

  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  /* One upload run; `onUpdate(run)` is called whenever progress or state changes. */
  class UploadRun {
    constructor(entries, options) {
      this.options = options;
      this.entries = entries;
      this.files = entries.map((e) => ({ path: e.path, file: e.file, size: e.file.size, sent: 0, hashed: 0, state: "waiting", note: "" }));
      this.byPath = new Map(this.files.map((f) => [f.path, f]));
      this.phase = "idle";
      this.startedAt = 0;
      this.xhrs = new Set();
      this.aborted = false;
      this.submissionId = null;
    }

    get total() {
      return this.files.reduce((sum, f) => sum + f.size, 0);
    }
    get sent() {
      return this.files.reduce((sum, f) => sum + Math.min(f.sent, f.size), 0);
    }

    update() {
      if (this.options.onUpdate) this.options.onUpdate(this);
    }

    abort() {
      this.aborted = true;
      for (const f of this.files) if (f.hashJob) f.hashJob.cancel();
      for (const xhr of this.xhrs) xhr.abort();
    }

    checkAborted() {
      if (this.aborted) throw new StoreError(0, "aborted", LB.t("upload_aborted"));
    }

    async run() {
      try {
        return await this.steps();
      } finally {
        this.release();
      }
    }

    /* The bytes kept from hashing are let go once the run ends, sent or not. */
    release() {
      for (const f of this.files) {
        f.bytes = null;
        if (f.hashJob) f.hashJob.release();
      }
    }

    async steps() {
      const { entrypoint, config, metadata, benchmark } = this.options;
      this.startedAt = performance.now();
      this.phase = "hashing";
      // Usually started when the files were picked (lb-submit.js): this only waits for what is left.
      const hashing = this.files.filter((f) => LB.wantsHash(f.path, f.size)).map((f) => this.hash(f));
      this.update();
      await Promise.all(hashing);
      this.checkAborted();
      this.phase = "requesting";
      this.update();
      const declared = this.files.map((f) => (f.sha256 ? { path: f.path, size: f.size, sha256: f.sha256 } : { path: f.path, size: f.size }));
      const body = { entrypoint, config, metadata, files: declared };
      if (benchmark) body.benchmark = benchmark; // none: the guide's self-reported path
      const created = (await LB.api("/submissions", { method: "POST", body })).data;
      this.submissionId = created.submission_id;
      this.checkAborted();
      this.phase = "uploading";
      this.uploadStartedAt = performance.now();
      this.update();
      const gate = semaphore(this.options.concurrency || 4);
      // Smallest first: the gate is first come, first served, so small files go before a large file's parts.
      const bySize = [...created.uploads].sort((a, b) => (this.byPath.get(a.path) || {}).size - (this.byPath.get(b.path) || {}).size);
      await Promise.all(bySize.map((item) => this.uploadItem(item, gate)));
      this.checkAborted();
      this.phase = "manifest";
      this.update();
      const manifest = created.manifest;
      await this.send("PUT", manifest.url, manifest.headers || {}, new Blob([manifest.body]), null);
      this.phase = "done";
      this.update();
      return created.submission_id;
    }

    /* The file's sha256 (lb-hash.js): every declared hash is needed before the create request. */
    async hash(f) {
      const job = (f.hashJob = LB.hashFile(f.path, f.file));
      const follow = () => {
        f.hashed = job.done;
        f.state = job.finishedAt || job.cached ? "waiting" : "hashing";
        this.update();
      };
      job.onProgress = follow;
      follow();
      f.sha256 = await job.promise;
      f.bytes = job.takeBytes();
      follow();
    }

    /* The hashing step as a whole: bytes hashed (from the cache: none), and its speed while it ran. */
    get hashing() {
      const jobs = this.files.map((f) => f.hashJob).filter((job) => job && !job.cached);
      const started = jobs.map((job) => job.startedAt).filter(Boolean);
      const total = jobs.reduce((sum, job) => sum + job.size, 0);
      const done = jobs.reduce((sum, job) => sum + job.done, 0);
      const finished = jobs.every((job) => job.finishedAt);
      const end = finished && jobs.length ? Math.max(...jobs.map((job) => job.finishedAt)) : performance.now();
      const seconds = started.length ? (end - Math.min(...started)) / 1000 : 0;
      const cached = this.files.filter((f) => f.hashJob && f.hashJob.cached).length;
      return { files: jobs.length, cached, total, done, finished, seconds, rate: seconds > 0 ? done / seconds : 0 };
    }

    async uploadItem(item, gate) {
      const f = this.byPath.get(item.path);
      if (!f) throw new StoreError(0, "unknown", "the API answered for a file that was not declared: " + item.path);
      try {
        if (item.status === "present") {
          f.state = "present";
          f.sent = f.size;
        } else if (item.method === "MULTIPART") {
          f.state = "uploading";
          this.update();
          try {
            await this.multipart(item, f, gate);
          } catch (err) {
            if (!(err instanceof NoEtag) || !item.url || f.size > MAX_SINGLE_PUT) throw err;
            // The store hides ETag from the browser (CORS): send the whole file with the item's single PUT.
            f.note = LB.t("upload_no_etag");
            f.sent = 0;
            await gate(() => this.send("PUT", item.url, item.headers || {}, this.body(f, 0, f.size), f));
          }
          f.state = "done";
        } else {
          f.state = "uploading";
          this.update();
          await gate(() => this.send("PUT", item.url, item.headers || {}, this.body(f, 0, f.size), f));
          f.state = "done";
        }
      } catch (err) {
        if (err instanceof StoreError && !err.path) err.path = f.path;
        f.state = "failed";
        f.note = err.message;
        this.update();
        this.abort();
        throw err;
      }
      this.update();
    }

    async multipart(item, f, gate) {
      const loaded = new Array(item.parts.length).fill(0);
      const track = (index) => (bytes) => {
        loaded[index] = bytes;
        f.sent = loaded.reduce((a, b) => a + b, 0);
        this.update();
      };
      const etags = await Promise.all(
        item.parts.map((part, index) =>
          gate(async () => {
            const start = (part.part_number - 1) * item.part_size;
            const result = await this.send("PUT", part.url, {}, this.body(f, start, start + part.size), track(index));
            if (!result.etag) throw new NoEtag("no ETag for part " + part.part_number);
            return result.etag;
          })
        )
      );
      const xml = "<CompleteMultipartUpload>" + etags.map((etag, i) => "<Part><PartNumber>" + (i + 1) + "</PartNumber><ETag>" + etag.replace(/&/g, "&amp;").replace(/</g, "&lt;") + "</ETag></Part>").join("") + "</CompleteMultipartUpload>";
      const complete = item.complete;
      await this.send(complete.method || "POST", complete.url, complete.headers || {}, new Blob([xml]), null);
    }

    /* A body: the bytes kept from hashing when there are some (a view, not a copy), else a slice of the File. */
    body(f, start, end) {
      if (f.bytes) return new Uint8Array(f.bytes, start, end - start);
      return start === 0 && end === f.size ? f.file : f.file.slice(start, end);
    }

    /* One request with retries. `progress` is a file record (its `sent` follows) or a function(bytes) or null. */
    async send(method, url, headers, body, progress) {
      const report = (bytes) => {
        if (typeof progress === "function") progress(bytes);
        else if (progress) {
          progress.sent = bytes;
          this.update();
        }
      };
      for (let attempt = 1; ; attempt++) {
        this.checkAborted();
        try {
          return await this.xhr(method, url, headers, body, report);
        } catch (err) {
          report(0);
          err.attempts = attempt;
          if (this.aborted || !retryable(err) || attempt >= ATTEMPTS) throw err;
          await sleep(Math.min(8000, 500 * 2 ** (attempt - 1)) * (0.8 + Math.random() * 0.4));
        }
      }
    }

    xhr(method, url, headers, body, report) {
      return new Promise((resolve, reject) => {
        const xhr = new XMLHttpRequest();
        this.xhrs.add(xhr);
        xhr.open(method, url);
        for (const [name, value] of Object.entries(headers)) {
          if (name.toLowerCase() !== "content-length") xhr.setRequestHeader(name, value);
        }
        xhr.upload.onprogress = (e) => report(e.loaded);
        xhr.onload = () => {
          this.xhrs.delete(xhr);
          const text = xhr.responseText || "";
          // S3 may answer a CompleteMultipartUpload with 200 and an <Error> body.
          if (xhr.status >= 300 || text.slice(0, 512).includes("<Error>")) {
            const err = s3Error(xhr.status, text);
            if (xhr.status < 300) err.status = TRANSIENT_CODES.has(err.code) ? 500 : 400;
            reject(err);
            return;
          }
          report(body instanceof Blob ? body.size : body.byteLength);
          resolve({ status: xhr.status, etag: xhr.getResponseHeader("ETag"), text });
        };
        xhr.onerror = () => {
          this.xhrs.delete(xhr);
          reject(new StoreError(0, "network", LB.t("upload_network")));
        };
        xhr.onabort = () => {
          this.xhrs.delete(xhr);
          reject(new StoreError(0, "aborted", LB.t("upload_aborted")));
        };
        xhr.send(body);
      });
    }
  }
  LB.UploadRun = UploadRun;

  /* Plain words for a store failure, as the CLI's: the file, what happened, what to do. */
  const STORE_TEXTS = { BadDigest: "store_digest", XAmzContentSHA256Mismatch: "store_digest", EntityTooLarge: "store_413", NoSuchUpload: "store_aborted", 413: "store_413", 403: "store_403" };
  LB.describeStoreError = (err) => {
    if (!(err instanceof StoreError)) return LB.describeError(err);
    if (err.code === "aborted") return err.message;
    const tries = err.attempts > 1 ? LB.t("store_tries", { n: err.attempts }) : "";
    const words = { path: err.path || "a file", tries, status: err.status, code: err.code, message: err.message };
    if (err.status === 0) return LB.t("store_network", words);
    if (err.status >= 500) return LB.t("store_5xx", words);
    return LB.t(STORE_TEXTS[err.code] || STORE_TEXTS[err.status] || "store_other", words);
  };

  LB.loaded.upload = true;
})();
