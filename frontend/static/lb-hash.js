/* The sha256 of the files a submission deduplicates (ingest answers "present" for content already stored),
 * computed in Web Workers (lb-hash-worker.js: the browser's native SHA-256 or hash-wasm) so that the page stays
 * responsive, a few files at a time, starting as soon as the files are picked (lb-submit.js) rather than on
 * Submit. Hashes are remembered by (path, name, size, last modified) in localStorage, as the CLI caches them by
 * (path, size, mtime): resubmitting unchanged files costs no hashing.
 *
 *   const job = LB.hashFile(path, file);  job.promise -> hex;  job.done, job.startedAt, job.finishedAt;
 *   job.cancel() stops it (its worker is terminated). The same (path, File) gives the same job.
 *   job.takeBytes() -> the file's bytes as read for the native digest (an ArrayBuffer), or null; job.release()
 *   lets them go. Sending those bytes spares a second read of the file through the browser's file machinery,
 *   the costliest part of the page's upload (bench/README.md); they are kept within the configured
 *   upload_memory_bytes in total (LB_FRONTEND_UPLOAD_MEMORY_BYTES), and for KEEP_MS at most if no upload takes
 *   them. */
(function () {
  "use strict";
  const LB = (window.LB = window.LB || {});
  LB.loaded = LB.loaded || {};

  const CACHE_KEY = "leadersboard.sha256";
  const CACHE_ENTRIES = 500;
  const KEEP_MS = 10 * 60 * 1000;
  let keptBytes = 0; // reserved by running jobs or held by finished ones

  /* The CLI's rule (leadersboard/upload.py wants_hash): zips and files of 16 MiB or more are deduplicated. */
  LB.wantsHash = (path, size) => /\.zip$/i.test(path) || size >= 16 * 1024 * 1024;

  const cacheKey = (path, file) => [path, file.name, file.size, file.lastModified].join("\u0000");

  function readCache() {
    try {
      return JSON.parse(window.localStorage.getItem(CACHE_KEY) || "{}") || {};
    } catch (err) {
      return {};
    }
  }

  function remember(key, sha256) {
    const cache = readCache();
    cache[key] = [sha256, Date.now()];
    // Bounded: the least recently hashed entries go first.
    const kept = Object.entries(cache).sort((a, b) => b[1][1] - a[1][1]).slice(0, CACHE_ENTRIES);
    try {
      window.localStorage.setItem(CACHE_KEY, JSON.stringify(Object.fromEntries(kept)));
    } catch (err) {
      // Storage full or disabled: the hash is only not remembered.
    }
  }

  /* A few workers: each hashes one file at a time; more would only compete for the disk and the cores. */
  const POOL_SIZE = Math.max(1, Math.min(4, (navigator.hardwareConcurrency || 2) - 1));
  const idle = [];
  const queue = [];
  let running = 0;
  let nextId = 1;

  function workerUrl(name) {
    return new URL(LB.state.config[name], document.baseURI).href;
  }

  function pump() {
    while (queue.length && running < POOL_SIZE) {
      const job = queue.shift();
      running += 1;
      start(job, idle.pop() || new Worker(workerUrl("hash_worker_url")));
    }
  }

  function start(job, worker) {
    job.worker = worker;
    job.startedAt = performance.now();
    job.reserved = job.keep && keptBytes + job.size <= LB.state.config.upload_memory_bytes;
    if (job.reserved) keptBytes += job.size;
    const finish = (keep) => {
      job.finishedAt = performance.now();
      job.worker = null;
      running -= 1;
      if (keep) idle.push(worker);
      else worker.terminate();
      pump();
    };
    job.stop = () => finish(false);
    worker.onmessage = (event) => {
      const msg = event.data;
      if (msg.id !== job.id) return;
      if (msg.done !== undefined) {
        job.done = msg.done;
        if (job.onProgress) job.onProgress(job);
        return;
      }
      finish(true);
      if (msg.bytes) {
        job.bytes = msg.bytes;
        job.releaseTimer = setTimeout(job.release, KEEP_MS);
      } else job.release();
      if (msg.error) job.reject(new Error(LB.t("hash_failed", { path: job.path, message: msg.error })));
      else {
        job.done = job.size;
        job.engine = msg.engine;
        remember(job.key, msg.sha256);
        job.resolve(msg.sha256);
      }
    };
    worker.onerror = (event) => {
      event.preventDefault();
      finish(false);
      job.release();
      job.reject(new Error(LB.t("hash_failed", { path: job.path, message: event.message || "worker error" })));
    };
    const library = workerUrl("hash_library_url");
    worker.postMessage({ id: job.id, file: job.file, library, engine: job.engine, keep: job.reserved });
  }

  const jobs = new Map();

  /* `engine`: "auto" (native when it can, else wasm) or "wasm" (tests check both against hashlib). */
  LB.hashFile = (path, file, engine) => {
    const key = cacheKey(path, file);
    const known = jobs.get(key);
    if (known && !known.cancelled && !engine) return known;
    const job = { id: nextId++, key, path, file, size: file.size, done: 0, engine: engine || "auto", startedAt: 0, finishedAt: 0, cached: false };
    job.keep = !engine; // an engine test (engine given) keeps nothing
    job.bytes = null;
    job.takeBytes = () => {
      clearTimeout(job.releaseTimer);
      return job.bytes;
    };
    job.release = () => {
      clearTimeout(job.releaseTimer);
      if (job.reserved) keptBytes -= job.size;
      job.reserved = false;
      job.bytes = null;
    };
    job.promise = new Promise((resolve, reject) => {
      job.resolve = resolve;
      job.reject = reject;
    });
    job.promise.catch(() => jobs.get(key) === job && jobs.delete(key));
    const hit = engine ? null : readCache()[key];
    if (hit) {
      Object.assign(job, { cached: true, done: file.size });
      job.resolve(hit[0]);
    } else {
      queue.push(job);
      pump();
    }
    job.cancel = () => {
      if (job.finishedAt || job.cached || job.cancelled) return;
      job.cancelled = true;
      const waiting = queue.indexOf(job);
      if (waiting >= 0) queue.splice(waiting, 1);
      else if (job.stop) job.stop();
      job.release();
      job.reject(new LB.StoreError(0, "aborted", LB.t("upload_aborted")));
    };
    if (!engine) jobs.set(key, job);
    return job;
  };

  /* Stop hashing what is no longer picked. */
  LB.dropHashes = (keep) => {
    const wanted = new Set(keep.map(([path, file]) => cacheKey(path, file)));
    for (const [key, job] of jobs) {
      if (!wanted.has(key)) {
        job.cancel();
        job.release();
        jobs.delete(key);
      }
    }
  };

  /* For the tests and the bench: the jobs of the picked files, and the bytes kept in all. */
  LB.hashJobs = () => [...jobs.values()];
  LB.keptHashBytes = () => keptBytes;

  LB.loaded.hash = true;
})();
