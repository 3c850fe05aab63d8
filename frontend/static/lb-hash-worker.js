/* Web Worker: the sha256 of one File at a time, off the page's thread (lb-hash.js runs a few of these).
 *
 * In:  {id, file, library, engine, keep}  library: URL of vendor/hash-wasm-sha256.js; engine: "auto" | "wasm";
 *      keep: hand the bytes read for the native digest back (transferred, not copied) so the page can send
 *      them without reading the file again (lb-upload.js).
 * Out: {id, done} as it goes (bytes hashed), then {id, sha256, engine, bytes} (bytes: an ArrayBuffer when kept,
 *      else null) or {id, error}.
 *
 * Two engines, because neither alone is fast and safe everywhere:
 * - "native": crypto.subtle.digest, the browser's own SHA-256 (CPU SHA instructions, about 1.5 GB/s here) but
 *   only in secure contexts (https, localhost) and only over one buffer: the whole file is read into memory,
 *   so it is used up to NATIVE_MAX_BYTES;
 * - "wasm": hash-wasm (WebAssembly, about 200 MB/s here: WebAssembly has no SHA instructions), streaming in
 *   CHUNK_BYTES chunks with the next chunk read while the current one is hashed: any size, any page. */
"use strict";

const CHUNK_BYTES = 8 * 1024 * 1024;
const NATIVE_MAX_BYTES = 2 * 1024 * 1024 * 1024;

let hasher = null;

function hex(buffer) {
  return Array.from(new Uint8Array(buffer), (x) => x.toString(16).padStart(2, "0")).join("");
}

async function native(id, file, keep) {
  const bytes = await file.arrayBuffer();
  const digest = await self.crypto.subtle.digest("SHA-256", bytes);
  self.postMessage({ id, done: file.size });
  const kept = keep ? bytes : null;
  self.postMessage({ id, sha256: hex(digest), engine: "native", bytes: kept }, kept ? [kept] : []);
}

async function wasm(id, file, library) {
  if (!self.hashwasm) self.importScripts(library);
  hasher = hasher || (await self.hashwasm.createSHA256());
  hasher.init();
  let next = file.slice(0, CHUNK_BYTES).arrayBuffer();
  for (let offset = 0; offset < file.size; ) {
    const chunk = await next;
    const end = offset + chunk.byteLength;
    if (end < file.size) next = file.slice(end, end + CHUNK_BYTES).arrayBuffer();
    hasher.update(new Uint8Array(chunk));
    offset = end;
    self.postMessage({ id, done: offset });
  }
  return hasher.digest("hex");
}

function nativeFits(file) {
  return Boolean(self.isSecureContext && self.crypto && self.crypto.subtle) && file.size <= NATIVE_MAX_BYTES;
}

self.onmessage = async (event) => {
  const { id, file, library, engine, keep } = event.data;
  try {
    if (engine !== "wasm" && nativeFits(file)) {
      try {
        await native(id, file, Boolean(keep));
        return;
      } catch (err) {
        // Not enough memory for the whole file (RangeError, NotReadableError): stream it instead.
      }
    }
    self.postMessage({ id, sha256: await wasm(id, file, library), engine: "wasm", bytes: null });
  } catch (err) {
    self.postMessage({ id, error: String((err && err.message) || err) });
  }
};
