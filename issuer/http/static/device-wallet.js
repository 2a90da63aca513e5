// Device-bound codes in the browser (docs/format.md §4, "Device-bound codes").
//
// The page keeps a P-256 key pair that WebCrypto made non-extractable, in IndexedDB: the phone's own key,
// which names the phone to the issuer and nothing else. While online it makes a batch of K more such key
// pairs, one per slot of the day (24 h / K), and the issuer signs a credential for each, valid in its own
// slot only; the batch (credentials and their private keys) is kept in IndexedDB. Every refresh the page
// takes the credential whose slot holds the current time and signs it and the time with that slot's key
// (an RFC 9338 Countersignature0 v2, time as RFC 9597 CWT claims), shown as an "SMD1:" code, with no
// network at all. Codes from different slots share no key; a slot's key is never used for another.
"use strict";

const DeviceWallet = (() => {
  const B45 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:";
  const PREFIX = "SMD1:";
  // CBOR text "CounterSignature0V2": the context of the structure the phone signs.
  const CONTEXT = [0x73, ...new TextEncoder().encode("CounterSignature0V2")];
  const DB_NAME = "suishenma-wallet";
  const DAY = 86400;

  function b45encode(bytes) {
    let out = "";
    for (let i = 0; i + 1 < bytes.length; i += 2) {
      const n = bytes[i] * 256 + bytes[i + 1];
      out += B45[n % 45] + B45[Math.floor(n / 45) % 45] + B45[Math.floor(n / 2025)];
    }
    if (bytes.length % 2) {
      const n = bytes[bytes.length - 1];
      out += B45[n % 45] + B45[Math.floor(n / 45)];
    }
    return out;
  }

  function b64urlDecode(text) {
    const b64 = text.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((text.length + 3) % 4);
    return Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  }

  function bstrHead(n) {
    if (n < 24) return [0x40 | n];
    if (n < 256) return [0x58, n];
    return [0x59, n >> 8, n & 255];
  }

  function concat(...parts) {
    const out = new Uint8Array(parts.reduce((sum, p) => sum + p.length, 0));
    let pos = 0;
    for (const p of parts) {
      out.set(p, pos);
      pos += p.length;
    }
    return out;
  }

  function readBstr(bytes, pos) {
    const head = bytes[pos];
    if (head >> 5 !== 2) throw new Error("credential: expected a byte string");
    const info = head & 31;
    let start = pos + 1, length = info;
    if (info === 24) { length = bytes[pos + 1]; start = pos + 2; }
    else if (info === 25) { length = bytes[pos + 1] * 256 + bytes[pos + 2]; start = pos + 3; }
    else if (info > 25) throw new Error("credential: byte string too long");
    if (start + length > bytes.length) throw new Error("credential: truncated");
    return [bytes.subarray(start, start + length), start + length];
  }

  // A credential is a tagged COSE_Sign1 with an empty unprotected header: D2 84 <prot> A0 <payload> <sig>.
  function parseCredential(bytes) {
    if (bytes[0] !== 0xd2 || bytes[1] !== 0x84) throw new Error("credential: not a COSE_Sign1");
    const [prot, afterProt] = readBstr(bytes, 2);
    if (bytes[afterProt] !== 0xa0) throw new Error("credential: already presented");
    const [payload, afterPayload] = readBstr(bytes, afterProt + 1);
    const [signature, end] = readBstr(bytes, afterPayload);
    if (end !== bytes.length) throw new Error("credential: trailing bytes");
    return { prot, payload, signature };
  }

  // {6: t} in its shortest form, for the times of this century: A1 06 1A t t t t.
  function timeClaims(t) {
    return new Uint8Array([0xa1, 0x06, 0x1a, (t >>> 24) & 255, (t >>> 16) & 255, (t >>> 8) & 255, t & 255]);
  }

  async function present(credentialBytes, privateKey, t) {
    const { prot, payload, signature } = parseCredential(credentialBytes);
    const aad = timeClaims(t);
    const structure = concat(
      [0x85], CONTEXT, bstrHead(prot.length), prot, bstrHead(aad.length), aad,
      bstrHead(payload.length), payload, [0x81], bstrHead(signature.length), signature,
    );
    // WebCrypto's ECDSA signature is raw r || s, which is what COSE uses (RFC 9053 §2.1).
    const deviceSig = new Uint8Array(
      await crypto.subtle.sign({ name: "ECDSA", hash: "SHA-256" }, privateKey, structure),
    );
    const unprotected = concat([0xa2, 0x0c], bstrHead(deviceSig.length), deviceSig, [0x0f], aad);
    const message = concat(
      [0xd2, 0x84], bstrHead(prot.length), prot, unprotected,
      bstrHead(payload.length), payload, bstrHead(signature.length), signature,
    );
    return PREFIX + b45encode(message);
  }

  function database() {
    return new Promise((resolve, reject) => {
      const req = indexedDB.open(DB_NAME, 1);
      req.onupgradeneeded = () => req.result.createObjectStore("wallet");
      req.onsuccess = () => resolve(req.result);
      req.onerror = () => reject(req.error);
    });
  }

  async function get(key) {
    const db = await database();
    return new Promise((resolve, reject) => {
      const req = db.transaction("wallet").objectStore("wallet").get(key);
      req.onsuccess = () => resolve(req.result);
      req.onerror = () => reject(req.error);
    });
  }

  async function put(key, value) {
    const db = await database();
    return new Promise((resolve, reject) => {
      const tx = db.transaction("wallet", "readwrite");
      tx.objectStore("wallet").put(value, key);
      tx.oncomplete = () => resolve();
      tx.onerror = () => reject(tx.error);
    });
  }

  // The key pair is made once and kept; its private half can be used to sign but never read out.
  async function deviceKey() {
    let pair = await get("device-key");
    if (!pair) {
      pair = await crypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, false, ["sign", "verify"]);
      await put("device-key", pair);
    }
    return pair;
  }

  // A key pair for one slot, made for it alone and never reused: non-extractable, like the phone's.
  function slotKey() {
    return crypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, false, ["sign", "verify"]);
  }

  // The held slot (a {valid_from, expires_at, ...} record) whose slot holds t, or null.
  function current(slots, t) {
    return slots.find((s) => s.valid_from <= t && t < s.expires_at) || null;
  }

  // What to do at time t holding `slots`, for a batch of k: keep the run of slots from the one holding t
  // (expired slots, and any after a gap, are dropped with their keys), and renew while less than half a
  // day remains, asking only for the slots it lacks from the end of the last one kept (start null: from
  // now, a whole batch).
  function plan(slots, t, k) {
    const sorted = [...slots].sort((a, b) => a.valid_from - b.valid_from);
    const first = current(sorted, t);
    const keep = first ? [first] : [];
    for (const s of sorted) {
      if (first && s.valid_from === keep[keep.length - 1].expires_at) keep.push(s);
    }
    const end = first ? keep[keep.length - 1].expires_at : t;
    const need = end - t < DAY / 2 ? Math.max(0, k - keep.length) : 0;
    return { keep, need, start: first ? end : null };
  }

  async function publicJwk(pair) {
    const { kty, crv, x, y } = await crypto.subtle.exportKey("jwk", pair.publicKey);
    return { kty, crv, x, y };
  }

  function supported() {
    return Boolean(window.isSecureContext && window.crypto && crypto.subtle && window.indexedDB);
  }

  return { b64urlDecode, current, deviceKey, get, plan, present, publicJwk, put, slotKey, supported };
})();
