// The JavaScript guest library for cross-domain-sync entity plugins.
//
// The JavaScript twin of the Rust SDK (`plugins/sdk`) and of the Python one
// (`plugins/sdk-python`): a plugin declares its entity type, version, item
// schema and which fields hold emails, phones, addresses and timestamps, and
// `exportPlugin` turns that into the WIT interface `gold:entity/plugin@1.1.0`
// that `componentize-js` builds into a component. Everything else is done
// here the way the Rust SDK and `cds-policy` do it: renames from and to each
// domain's field names, the standard normalisation, and the crossing's policy
// (withhold, reduce, strip), so that a plugin in any of the three languages
// gives the same items on the same data. The host re-checks every result
// whichever language made it.
//
// A plugin is a module `app.js`:
//
//     import { exportPlugin } from "./cds_plugin.js";
//     import schema from "./schema.js";
//     export const plugin = exportPlugin({
//       entityType: "notes", version: "1.0.0", itemSchema: schema,
//       timestampFields: ["remindAt"],
//     });
//
// built with
// `componentize-js app.js --wit wit/entity.wit -n entity-plugin -d http fetch-event -o notes.wasm`.
//
// Numbers. JavaScript reads every JSON number as a double, which would change
// a user's `12345678901234567890`, `2.50` or `1E+2` on its way across, and
// JavaScript objects put keys like "1" before the others. An item whose text
// `JSON.parse` and `JSON.stringify` do not give back exactly is therefore read
// by this library's own parser instead: a number that would not survive
// stays a `RawNumber` holding its text, and objects remember their key order;
// `stringify` writes both back as they were. Such items are rare (the host
// sends items compact, as serde_json writes them), so the fast native path
// serves the rest.

export const INTERFACE_VERSION = "1.1.0";

/** A batch cannot be mapped or filtered; the host reports the message. */
export class PluginError extends Error {}

// --- JSON, exactly ------------------------------------------------------------

/** Set when `JSON.stringify` met a `RawNumber`, which it cannot write. */
let metRaw = false;

/** A JSON number kept as written, because a double would change it. */
export class RawNumber {
  constructor(text) {
    this.text = text;
  }

  /** Tells `stringify` that the native encoder met one (see there). */
  toJSON() {
    metRaw = true;
    return null;
  }
}

/** Where an object read by the exact parser keeps its keys' order. */
const ORDER = Symbol("key order");

/** Sets `obj[k]` as an own field, even for the key `__proto__` (which an
 * assignment would take for the object's prototype). */
function put(obj, k, v) {
  if (k === "__proto__") Object.defineProperty(obj, k, { value: v, enumerable: true, writable: true, configurable: true });
  else obj[k] = v;
}

function isObject(v) {
  return v !== null && typeof v === "object" && !Array.isArray(v) && !(v instanceof RawNumber);
}

/** The keys of `obj` in the order they were read, then any added since. */
function keysOf(obj) {
  const order = obj[ORDER];
  if (!order) return Object.keys(obj);
  const seen = new Set();
  const out = [];
  for (const k of order) {
    if (Object.hasOwn(obj, k) && !seen.has(k)) {
      seen.add(k);
      out.push(k);
    }
  }
  for (const k of Object.keys(obj)) if (!seen.has(k)) out.push(k);
  return out;
}

/** Compact JSON as serde_json writes it, numbers and key order as read.
 * An item `JSON.parse` read exactly (no `ORDER` at its top) is written by
 * the native encoder, which is many times faster than this module's own in
 * a component's interpreted JavaScript; should it meet a `RawNumber` all the
 * same, the item is written again the careful way. */
export function stringify(v) {
  if (isObject(v) && !v[ORDER]) {
    metRaw = false;
    const text = JSON.stringify(v);
    if (!metRaw) return text;
  }
  return careful(v);
}

function careful(v) {
  if (v instanceof RawNumber) return v.text;
  if (Array.isArray(v)) return "[" + v.map(careful).join(",") + "]";
  if (isObject(v)) {
    return "{" + keysOf(v).map((k) => JSON.stringify(k) + ":" + careful(v[k])).join(",") + "}";
  }
  return JSON.stringify(v);
}

/** A key a JavaScript object puts before the others. */
const INDEX = /^(?:0|[1-9][0-9]{0,9})$/;

const WS = new Set([" ", "\t", "\n", "\r"]);
const SCALAR = /-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?|true|false|null/y;

/** A JSON parser that keeps what `JSON.parse` loses (see "Numbers" above).
 * Written here because no JavaScript engine of the componentize-js runtime
 * offers JSON.parse's source text access. */
function parseExact(text) {
  let i = 0;
  const fail = (what) => {
    throw new SyntaxError(`${what} at position ${i}`);
  };
  const ws = () => {
    while (i < text.length && WS.has(text[i])) i++;
  };
  const str = () => {
    const start = i;
    i++;
    while (i < text.length && text[i] !== '"') i += text[i] === "\\" ? 2 : 1;
    if (i >= text.length) fail("unterminated string");
    i++;
    return JSON.parse(text.slice(start, i));
  };
  const value = () => {
    ws();
    const c = text[i];
    if (c === "{") {
      i++;
      const obj = {};
      const order = [];
      ws();
      if (text[i] === "}") {
        i++;
      } else {
        for (;;) {
          ws();
          if (text[i] !== '"') fail("expected a key");
          const k = str();
          ws();
          if (text[i] !== ":") fail("expected `:`");
          i++;
          put(obj, k, value());
          order.push(k);
          ws();
          if (text[i] === ",") {
            i++;
            continue;
          }
          if (text[i] === "}") {
            i++;
            break;
          }
          fail("expected `,` or `}`");
        }
      }
      Object.defineProperty(obj, ORDER, { value: order, enumerable: false, writable: true });
      return obj;
    }
    if (c === "[") {
      i++;
      const arr = [];
      ws();
      if (text[i] === "]") {
        i++;
        return arr;
      }
      for (;;) {
        arr.push(value());
        ws();
        if (text[i] === ",") {
          i++;
          continue;
        }
        if (text[i] === "]") {
          i++;
          return arr;
        }
        fail("expected `,` or `]`");
      }
    }
    if (c === '"') return str();
    SCALAR.lastIndex = i;
    const m = SCALAR.exec(text);
    if (!m) fail("unexpected character");
    i = SCALAR.lastIndex;
    const t = m[0];
    if (t === "true") return true;
    if (t === "false") return false;
    if (t === "null") return null;
    const n = Number(t);
    return JSON.stringify(n) === t ? n : new RawNumber(t);
  };
  const v = value();
  ws();
  if (i !== text.length) fail("trailing characters");
  return v;
}

// What may be a number's end, or a key a JavaScript object moves first, in
// compact JSON text. A match inside a string only costs the check below.
const MAYBE_NUMBER = /[0-9][,}\]]/;
const MAYBE_INDEX_KEY = /[{,]"(?:0|[1-9][0-9]*)":/;

/** JSON text to a value that `stringify` writes back as it was. */
export function parse(text) {
  const v = JSON.parse(text);
  if (!MAYBE_NUMBER.test(text) && !MAYBE_INDEX_KEY.test(text)) return v;
  return JSON.stringify(v) === text ? v : parseExact(text);
}

/** JSON equality as serde_json has it: `1`, `1.0` and `true` differ. */
const isNumber = (x) => typeof x === "number" || x instanceof RawNumber;

export function same(a, b) {
  if (typeof a === "string" || typeof b === "string") return a === b;
  if (isNumber(a) || isNumber(b)) return isNumber(a) && isNumber(b) && careful(a) === careful(b);
  if (Array.isArray(a) || Array.isArray(b)) {
    return Array.isArray(a) && Array.isArray(b) && a.length === b.length && a.every((x, i) => same(x, b[i]));
  }
  if (isObject(a) || isObject(b)) {
    if (!isObject(a) || !isObject(b)) return false;
    const ka = keysOf(a);
    const kb = keysOf(b);
    return ka.length === kb.length && ka.every((k) => Object.hasOwn(b, k) && same(a[k], b[k]));
  }
  return a === b;
}

// --- normalisation -----------------------------------------------------------

// Unicode White_Space, which Rust's `str::trim` removes (JavaScript's `trim`
// also removes U+FEFF and keeps U+0085).
const TRIM = /^[\t\n\v\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+|[\t\n\v\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+$/g;

/** Orders strings by code point, as Rust and Python sort them (JavaScript's
 * own `<` and `sort` compare UTF-16 units, which put U+E000-U+FFFF after
 * the characters beyond U+FFFF). */
export function byCodePoint(a, b) {
  if (a === b) return 0;
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    let x = a.charCodeAt(i);
    let y = b.charCodeAt(i);
    if (x !== y) {
      // Surrogates (U+D800-U+DFFF) stand for code points above U+FFFF.
      if (x >= 0xd800) x += x < 0xe000 ? 0x2000 : -0x800;
      if (y >= 0xd800) y += y < 0xe000 ? 0x2000 : -0x800;
      return x - y;
    }
  }
  return a.length - b.length;
}

/** Removes leading and trailing white space as Rust's `trim` does. */
export function trim(s) {
  // Most values need nothing: two character tests instead of a regex.
  if (s.length === 0 || (!isSpace(s.charCodeAt(0)) && !isSpace(s.charCodeAt(s.length - 1)))) return s;
  return s.replace(TRIM, "");
}

/** Whether a UTF-16 unit is Unicode White_Space (all of which are in the BMP). */
function isSpace(c) {
  return (
    c === 32 || (c >= 9 && c <= 13) || c === 0x85 || c === 0xa0 || c === 0x1680 ||
    (c >= 0x2000 && c <= 0x200a) || c === 0x2028 || c === 0x2029 || c === 0x202f || c === 0x205f ||
    c === 0x3000
  );
}

/** Lower-cases and trims an email address. */
export function normalizeEmail(s) {
  return trim(s).toLowerCase();
}

/** A phone number reduced to a leading `+` and digits, when it is made only
 * of digits and the usual separators; anything else is left as written
 * (trimmed) rather than guessed at. */
export function normalizePhone(s) {
  const t = trim(s);
  let out = "";
  let i = 0;
  for (const c of t) {
    if (c >= "0" && c <= "9") out += c;
    else if (c === "+" && i === 0) out += c;
    else if (!" -.()/".includes(c)) return t;
    i++;
  }
  return out.replace(/^\++/, "") === "" ? t : out;
}

/** An email (it has an `@`) as `normalizeEmail`, anything else as a phone. */
export function normalizeAddress(s) {
  return s.includes("@") ? normalizeEmail(s) : normalizePhone(s);
}

const RFC3339 =
  /^([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt ]([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]+))?([Zz]|[+-][0-9]{2}:[0-9]{2})$/;

const pad = (n, w) => String(n).padStart(w, "0");

// A timestamp as this function writes it, which most are (the host's own).
const CANONICAL = /^([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]{3}|[0-9]{6}|[0-9]{9}))?Z$/;

/** Whether `s` is already what `normalizeTimestamp` makes of it: written as
 * it writes, and a real time. */
function isCanonical(s) {
  const m = CANONICAL.exec(s);
  if (!m || (m[7] !== undefined && m[7].endsWith("000"))) return false;
  const y = Number(m[1]);
  const mo = Number(m[2]);
  const d = Number(m[3]);
  const leap = (y % 4 === 0 && y % 100 !== 0) || y % 400 === 0;
  const days = [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][mo - 1];
  return days !== undefined && d >= 1 && d <= days && Number(m[4]) <= 23 && Number(m[5]) <= 59 && Number(m[6]) <= 60;
}

/** An RFC 3339 timestamp in UTC with a `Z`, fractional seconds written with
 * 3, 6 or 9 digits as needed (chrono's `AutoSi`, as the Rust SDK). */
export function normalizeTimestamp(s) {
  if (isCanonical(s)) return s;
  const m = RFC3339.exec(trim(s));
  if (!m) throw new PluginError(`\`${s}\` is not an RFC 3339 timestamp`);
  const [y, mo, d, h, mi, sec] = m.slice(1, 7).map(Number);
  const nanos = Number(((m[7] ?? "") + "000000000").slice(0, 9));
  let offset = 0;
  const off = m[8];
  if (off !== "Z" && off !== "z") {
    const oh = Number(off.slice(1, 3));
    const om = Number(off.slice(4, 6));
    if (oh > 23 || om > 59) throw new PluginError(`\`${s}\` is not an RFC 3339 timestamp (offset out of range)`);
    offset = (oh * 60 + om) * (off[0] === "+" ? 1 : -1);
  }
  const leap = sec === 60;
  const days = new Date(Date.UTC(2000, mo - 1, 1));
  days.setUTCFullYear(y, mo - 1, d);
  if (mo < 1 || mo > 12 || d < 1 || days.getUTCMonth() !== mo - 1 || h > 23 || mi > 59 || sec > 60) {
    throw new PluginError(`\`${s}\` is not an RFC 3339 timestamp (out of range)`);
  }
  const t = new Date(days.getTime() + ((h * 60 + mi - offset) * 60 + (leap ? 59 : sec)) * 1000);
  const year = t.getUTCFullYear();
  if (year < 0 || year > 9999) throw new PluginError(`\`${s}\` is not an RFC 3339 timestamp (year out of range)`);
  let text =
    `${pad(year, 4)}-${pad(t.getUTCMonth() + 1, 2)}-${pad(t.getUTCDate(), 2)}T` +
    `${pad(t.getUTCHours(), 2)}:${pad(t.getUTCMinutes(), 2)}:${leap ? "60" : pad(t.getUTCSeconds(), 2)}`;
  if (nanos === 0) {
    // whole seconds
  } else if (nanos % 1_000_000 === 0) text += "." + pad(nanos / 1_000_000, 3);
  else if (nanos % 1_000 === 0) text += "." + pad(nanos / 1_000, 6);
  else text += "." + pad(nanos, 9);
  return text + "Z";
}

/** Applies `f` to the string, or each string of the array, `item[field]`
 * holds, in place. */
function eachString(item, field, f) {
  const v = item[field];
  if (typeof v === "string") put(item, field, f(v));
  else if (Array.isArray(v)) put(item, field, v.map((e) => (typeof e === "string" ? f(e) : e)));
}

/** The standard normalisation `plugin` declares (emails, phones, addresses,
 * then timestamps), then its own hook. */
export function normalize(plugin, item) {
  for (const field of plugin.emailFields) eachString(item, field, normalizeEmail);
  for (const field of plugin.phoneFields) eachString(item, field, normalizePhone);
  for (const field of plugin.addressFields) eachString(item, field, normalizeAddress);
  for (const [field, stamp] of plugin.stamps) eachString(item, field, stamp);
  plugin.normalize(item);
}

/** The timestamp fields' normalisers, each naming its field in an error. */
function stampers(fields) {
  return ["lastModified", ...fields].map((field) => [
    field,
    (s) => {
      try {
        return normalizeTimestamp(s);
      } catch (e) {
        throw new PluginError(`${field}: ${e.message}`);
      }
    },
  ]);
}

/** The fields of `item` renamed by `table` (pairs `[from, to]`), in order. */
export function renameFields(item, table) {
  if (table.length === 0) return item;
  const names = new Map();
  for (const [from, to] of table) if (!names.has(from)) names.set(from, to);
  const out = {};
  const order = [];
  for (const k of keysOf(item)) {
    const to = names.has(k) ? names.get(k) : k;
    put(out, to, item[k]);
    order.push(to);
  }
  // A JavaScript object keeps its keys in order unless one is an array
  // index ("2"): only then, or when the item had an order already, is the
  // order kept beside it.
  if (item[ORDER] || order.some((k) => INDEX.test(k))) {
    Object.defineProperty(out, ORDER, { value: order, enumerable: false, writable: true });
  }
  return out;
}

// --- the policy ----------------------------------------------------------------

function fields(obj, where, allowed, required) {
  if (!isObject(obj)) throw new PluginError(`the policy is not valid: ${where} is not an object`);
  const extra = keysOf(obj).filter((k) => !allowed.includes(k)).sort();
  if (extra.length) throw new PluginError(`the policy is not valid: unknown field \`${extra[0]}\` in ${where}`);
  for (const r of required) {
    if (!Object.hasOwn(obj, r)) throw new PluginError(`the policy is not valid: missing field \`${r}\` in ${where}`);
  }
}

function strings(v, where) {
  if (!Array.isArray(v) || !v.every((s) => typeof s === "string")) {
    throw new PluginError(`the policy is not valid: ${where} is not a list of strings`);
  }
  return [...v];
}

/** `field`'s value is one of `values` (for an array field: any element is). */
export class Rule {
  constructor(obj, where) {
    fields(obj, where, ["field", "in"], ["field", "in"]);
    if (typeof obj.field !== "string" || !Array.isArray(obj.in)) {
      throw new PluginError(`the policy is not valid: ${where} needs a string \`field\` and a list \`in\``);
    }
    this.field = obj.field;
    this.values = obj.in;
  }

  matches(item) {
    if (!Object.hasOwn(item, this.field)) return false;
    const v = item[this.field];
    if (Array.isArray(v)) return v.some((e) => this.values.some((w) => same(e, w)));
    return this.values.some((w) => same(v, w));
  }
}

/** The policy of one crossing, as `cds-policy` defines it: withhold, then
 * reduce, then strip. */
export class Policy {
  constructor(obj) {
    fields(obj, "the policy", ["withhold", "reduce", "strip"], []);
    this.withhold = (obj.withhold ?? []).map((r, i) => new Rule(r, `withhold[${i}]`));
    this.reduce = (obj.reduce ?? []).map((red, i) => {
      fields(red, `reduce[${i}]`, ["when", "keep", "set"], ["when", "keep"]);
      const set = red.set ?? {};
      if (!isObject(set)) throw new PluginError(`the policy is not valid: reduce[${i}].set is not an object`);
      if (!Array.isArray(red.when)) throw new PluginError(`the policy is not valid: reduce[${i}].when is not a list`);
      return {
        when: red.when.map((r, j) => new Rule(r, `reduce[${i}].when[${j}]`)),
        keep: strings(red.keep, `reduce[${i}].keep`),
        set,
      };
    });
    this.strip = strings(obj.strip ?? [], "strip");
    // Read by this module's own parser: its `set` values may hold numbers or
    // key orders that only `stringify`'s careful way writes back exactly.
    this.exact = Boolean(obj[ORDER]);
  }

  static parse(text) {
    let obj;
    try {
      obj = parse(text);
    } catch (e) {
      throw new PluginError(`the policy is not valid: ${e.message}`);
    }
    return new Policy(obj);
  }

  /** `[item or null when withheld, fields redacted, whether a kept item
   * changed]`; `item` is changed in place. (The count alone does not tell:
   * a reduction may add a field it sets without counting it.) */
  apply(item, idField) {
    if (this.withhold.some((r) => r.matches(item))) return [null, 0, true];
    let redacted = 0;
    let added = false;
    const red = this.reduce.find((red) => red.when.some((r) => r.matches(item)));
    if (red) {
      for (const k of keysOf(item)) {
        if (k !== idField && !red.keep.includes(k)) {
          delete item[k];
          redacted++;
        }
      }
      if (this.exact && !item[ORDER]) {
        Object.defineProperty(item, ORDER, { value: Object.keys(item), enumerable: false, writable: true });
      }
      for (const k of keysOf(red.set)) {
        if (!Object.hasOwn(item, k)) added = true;
        else if (!same(item[k], red.set[k])) redacted++;
        put(item, k, red.set[k]);
      }
    }
    for (const field of this.strip) {
      if (field !== idField && Object.hasOwn(item, field)) {
        delete item[field];
        redacted++;
      }
    }
    return [item, redacted, added || redacted > 0];
  }
}

// --- the batch functions -------------------------------------------------------

function parseItem(s, i) {
  let v;
  try {
    v = parse(s);
  } catch (e) {
    throw new PluginError(`item ${i} is not valid JSON: ${e.message}`);
  }
  if (!isObject(v)) throw new PluginError(`item ${i} is not a JSON object`);
  return v;
}

function itemId(plugin, item) {
  const v = item[plugin.idField];
  return typeof v === "string" ? v : "?";
}

/** The `i`th item of a batch, JSON text `s`, in the receiving shape. */
export function mapItem(plugin, toCanonical, toLocal, s, i) {
  const item = renameFields(parseItem(s, i), toCanonical);
  try {
    normalize(plugin, item);
  } catch (e) {
    if (!(e instanceof PluginError)) throw e;
    throw new PluginError(`item ${i} (id ${itemId(plugin, item)}): ${e.message}`);
  }
  return renameFields(item, toLocal);
}

function tables(fromFields, toFields) {
  return [fromFields.map((r) => [r.local, r.canonical]), toFields.map((r) => [r.canonical, r.local])];
}

export function mapBatch(plugin, fromFields, toFields, items) {
  const [toCanonical, toLocal] = tables(fromFields, toFields);
  return items.map((s, i) => stringify(mapItem(plugin, toCanonical, toLocal, s, i)));
}

/** `[kept texts, withheld ids, redacted]`. */
export function filterBatch(plugin, policyText, items) {
  const policy = Policy.parse(policyText);
  const kept = [];
  const withheld = [];
  let redacted = 0;
  items.forEach((s, i) => {
    const item = parseItem(s, i);
    const id = itemId(plugin, item);
    const [out, n] = plugin.filter(policy, item);
    redacted += n;
    if (out === null) withheld.push(id);
    else kept.push(stringify(out));
  });
  return [kept, withheld, redacted];
}

/** `[[mapped text or null when unchanged, "kept" | "withheld" | ["changed", text]], ...], redacted`. */
export function crossBatch(plugin, fromFields, toFields, policyText, items) {
  const policy = policyText == null ? null : Policy.parse(policyText);
  const [toCanonical, toLocal] = tables(fromFields, toFields);
  const out = [];
  let redacted = 0;
  items.forEach((s, i) => {
    const item = mapItem(plugin, toCanonical, toLocal, s, i);
    const mapped = stringify(item);
    let outcome = "kept";
    if (policy !== null) {
      // The mapped item's text is taken: the filter may change it in place.
      // The default filter says whether it did; a plugin's own cannot, and
      // its result is compared.
      const [kept, n, changed] = plugin.filter(policy, item);
      redacted += n;
      if (kept === null) outcome = "withheld";
      else if (changed !== false) {
        const text = stringify(kept);
        if (text !== mapped) outcome = ["changed", text];
      }
    }
    out.push([mapped === s ? null : mapped, outcome]);
  });
  return [out, redacted];
}

// --- the component's export ----------------------------------------------------

/** A plugin's declarations with every default filled in. */
export function declare(d) {
  for (const key of ["entityType", "version"]) {
    if (typeof d[key] !== "string") throw new TypeError(`the plugin's \`${key}\` must be a string`);
  }
  if (typeof d.itemSchema !== "string" && !isObject(d.itemSchema)) {
    throw new TypeError("the plugin's `itemSchema` must be JSON Schema, as text or as an object");
  }
  return {
    entityType: d.entityType,
    version: d.version,
    itemSchema: typeof d.itemSchema === "string" ? d.itemSchema : JSON.stringify(d.itemSchema),
    idField: d.idField ?? "id",
    emailFields: d.emailFields ?? [],
    phoneFields: d.phoneFields ?? [],
    addressFields: d.addressFields ?? [],
    // `lastModified` is always normalised.
    timestampFields: d.timestampFields ?? [],
    stamps: stampers(d.timestampFields ?? []),
    /** Type-specific normalisation after the standard one (canonical names). */
    normalize: d.normalize ?? (() => {}),
    /** The policy applied to one item: `[kept item or null, redacted]` (the
     * default also says whether a kept item changed). */
    filter: d.filter ?? ((policy, item) => policy.apply(item, d.idField ?? "id")),
  };
}

/** The object componentize-js exports as `gold:entity/plugin`: bind it to the
 * name `plugin` in the app module. A `PluginError` becomes the call's error
 * (its message); anything else thrown is left to componentize-js, and fails
 * the call as a fault of the plugin. */
export function exportPlugin(declarations) {
  const plugin = declare(declarations);
  const guarded = (f) => (request) => {
    try {
      return f(request);
    } catch (e) {
      if (e instanceof PluginError) throw e.message;
      throw e;
    }
  };
  return {
    describe() {
      return {
        entityType: plugin.entityType,
        pluginVersion: plugin.version,
        interfaceVersion: INTERFACE_VERSION,
        itemSchema: plugin.itemSchema,
        idField: plugin.idField,
      };
    },
    mapBatch: guarded((r) => mapBatch(plugin, r.fromFields, r.toFields, r.items)),
    filterBatch: guarded((r) => {
      const [kept, withheld, redacted] = filterBatch(plugin, r.policy, r.items);
      return { kept, withheld, redactedFields: BigInt(redacted) };
    }),
    crossBatch: guarded((r) => {
      const [items, redacted] = crossBatch(plugin, r.fromFields, r.toFields, r.policy, r.items);
      return {
        items: items.map(([mapped, outcome]) => ({
          mapped: mapped ?? undefined,
          outcome:
            outcome === "kept"
              ? { tag: "kept" }
              : outcome === "withheld"
                ? { tag: "withheld" }
                : { tag: "changed", val: outcome[1] },
        })),
        redactedFields: BigInt(redacted),
      };
    }),
  };
}
