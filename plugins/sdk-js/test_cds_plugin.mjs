// Unit tests of the JavaScript guest library, run natively by Node (no
// component): `node --test plugins/sdk-js/`. The cases mirror the Rust SDK's,
// cds-policy's and the Python library's; host/tests/notes_plugin.rs holds the
// built components of the three languages equal on the same data.
import assert from "node:assert/strict";
import { test } from "node:test";
import * as sdk from "./cds_plugin.js";

const Contacts = sdk.declare({
  entityType: "contacts",
  version: "0.0.1",
  itemSchema: "{}",
  emailFields: ["email"],
  phoneFields: ["phone"],
  timestampFields: ["birthday"],
});

const rename = (canonical, local) => ({ canonical, local });

test("phones, emails and timestamps are normalised as the Rust SDK does", () => {
  assert.equal(sdk.normalizeEmail("  Ann@Example.COM "), "ann@example.com");
  assert.equal(sdk.normalizePhone(" +1 (555) 010-2000 "), "+15550102000");
  assert.equal(sdk.normalizePhone("+1-555-6468 ext. 2"), "+1-555-6468 ext. 2");
  assert.equal(sdk.normalizePhone("1+2"), "1+2");
  assert.equal(sdk.normalizePhone(" + "), "+");
  assert.equal(sdk.normalizeAddress("B@X.org"), "b@x.org");
  assert.equal(sdk.normalizeAddress("555.1234"), "5551234");
  // Rust's trim: U+0085 is white space, U+FEFF is not.
  assert.equal(sdk.trim("\u0085a\u3000"), "a");
  assert.equal(sdk.trim("\ufeffa"), "\ufeffa");
  const ts = sdk.normalizeTimestamp;
  assert.equal(ts("2026-01-12T12:00:00+02:00"), "2026-01-12T10:00:00Z");
  assert.equal(ts("2026-01-12T10:00:00.5Z"), "2026-01-12T10:00:00.500Z");
  assert.equal(ts("2026-01-12t10:00:00.123456z"), "2026-01-12T10:00:00.123456Z");
  assert.equal(ts("2026-01-12T10:00:00.000000001Z"), "2026-01-12T10:00:00.000000001Z");
  assert.equal(ts("2026-01-12T10:00:00.000Z"), "2026-01-12T10:00:00Z");
  assert.equal(ts("2026-01-01T00:30:00+01:00"), "2025-12-31T23:30:00Z");
  assert.equal(ts("2026-03-01T00:15:00.123456789+05:30"), "2026-02-28T18:45:00.123456789Z");
  assert.equal(ts("0050-06-01T00:00:00Z"), "0050-06-01T00:00:00Z");
  assert.equal(ts("2024-02-29T23:59:60-01:00"), "2024-03-01T00:59:60Z");
  for (const bad of ["yesterday", "2026-01-12", "2026-13-01T00:00:00Z", "2026-02-30T00:00:00Z",
    "2026-01-12T24:00:00Z", "２０２６-01-12T10:00:00Z"]) {
    assert.throws(() => ts(bad), sdk.PluginError, bad);
  }
});

test("mapping renames, normalises and keeps unknown fields", () => {
  const items = [JSON.stringify({ id: "a", mail: " A@B.C ", lastModified: "2026-01-12T12:00:00+02:00",
    "x-vendor": { deep: [1, 2.5] } })];
  const out = sdk.mapBatch(Contacts, [rename("email", "mail")], [rename("email", "e-mail")], items);
  assert.equal(out[0],
    '{"id":"a","e-mail":"a@b.c","lastModified":"2026-01-12T10:00:00Z","x-vendor":{"deep":[1,2.5]}}');
});

test("numbers and key order come back exactly as written", () => {
  const s = '{"id":"a","2":"two","big":12345678901234567890,"x":{"b":2.50,"1":1E+2,"a":-0},"n":[1.0,0.1]}';
  const [mapped] = sdk.mapBatch(Contacts, [], [], [s]);
  assert.equal(mapped, s);
  const [[item]] = sdk.crossBatch(Contacts, [], [], '{"strip":["n"]}', [s]);
  assert.equal(item[0], null, "mapping changed nothing");
  assert.deepEqual(item[1], ["changed", '{"id":"a","2":"two","big":12345678901234567890,"x":{"b":2.50,"1":1E+2,"a":-0}}']);
  // Renamed to a key JavaScript would move first, it stays in place.
  assert.equal(sdk.mapBatch(Contacts, [rename("n", "x")], [rename("n", "7")], ['{"id":"a","x":1}'])[0],
    '{"id":"a","7":1}');
  // A reduction's exact value crosses exactly into an item read the fast way.
  const busy = '{"reduce":[{"when":[{"field":"id","in":["b"]}],"keep":[],"set":{"n":2.50,"m":{"2":0,"a":1}}}]}';
  assert.deepEqual(sdk.crossBatch(Contacts, [], [], busy, ['{"id":"b"}'])[0][0][1],
    ["changed", '{"id":"b","n":2.50,"m":{"2":0,"a":1}}']);
  // A RawNumber put into such an item by a hook is written as it is, too.
  assert.equal(sdk.stringify({ id: "c", n: new sdk.RawNumber("1.50") }), '{"id":"c","n":1.50}');
  // A key `__proto__` is a field like any other.
  const p = '{"id":"p","__proto__":{"polluted":true}}';
  assert.equal(sdk.mapBatch(Contacts, [], [], [p])[0], p);
  assert.equal({}.polluted, undefined);
});

test("strings sort by code point", () => {
  const words = ["b", "\uffee", "😀", "a", "ab", "", "\ud7ff"];
  const rust = [...words].sort((x, y) => {
    const [p, q] = [[...x].map((c) => c.codePointAt(0)), [...y].map((c) => c.codePointAt(0))];
    for (let i = 0; i < Math.min(p.length, q.length); i++) if (p[i] !== q[i]) return p[i] - q[i];
    return p.length - q.length;
  });
  assert.deepEqual([...words].sort(sdk.byCodePoint), rust);
  assert.deepEqual(rust.slice(-2), ["\uffee", "😀"]);
});

test("errors name the item", () => {
  assert.throws(() => sdk.mapBatch(Contacts, [], [], ['{"id":"a"}', '{"id":"b","lastModified":"soon"}']),
    /item 1 \(id b\): lastModified: .*not an RFC 3339/);
  assert.throws(() => sdk.mapBatch(Contacts, [], [], ["[1]"]), /item 0 is not a JSON object/);
  assert.throws(() => sdk.mapBatch(Contacts, [], [], ["{"]), /item 0 is not valid JSON/);
  assert.throws(() => sdk.filterBatch(Contacts, '{"drop":[]}', []), /unknown field `drop`/);
});

test("withhold, reduce and strip as cds-policy defines them", () => {
  const policy = JSON.stringify({
    withhold: [{ field: "category", in: ["family"] }],
    reduce: [{ when: [{ field: "visibility", in: ["private"] }], keep: ["start"], set: { title: "Busy" } }],
    strip: ["notes"],
  });
  const items = [
    { id: "a", category: ["work", "family"] },
    { id: "b", visibility: "private", start: "s", title: "Dentist", notes: "n" },
    { id: "c", visibility: "private", start: "s" },
    { id: "d", notes: "secret", n: 1 },
    { id: "e", category: null },
  ].map((i) => JSON.stringify(i));
  const [kept, withheld, redacted] = sdk.filterBatch(Contacts, policy, items);
  assert.deepEqual(withheld, ["a"]);
  assert.deepEqual(kept.map((k) => JSON.parse(k)), [
    { id: "b", start: "s", title: "Busy" },
    { id: "c", start: "s", title: "Busy" },
    { id: "d", n: 1 },
    { id: "e", category: null },
  ]);
  // b: visibility and notes removed, title replaced; c: visibility; d: notes.
  assert.equal(redacted, 3 + 1 + 1);
});

test("values compare as serde_json's do", () => {
  const rule = (v) => new sdk.Rule({ field: "n", in: [1] }, "r").matches(sdk.parse(`{"n":${v}}`));
  assert.equal(rule("1"), true);
  assert.equal(rule("1.0"), false);
  assert.equal(rule("true"), false);
  assert.equal(rule('"1"'), false);
  assert.equal(new sdk.Rule({ field: "n", in: [1] }, "r").matches({}), false);
});

test("crossing says what changed", () => {
  const policy = JSON.stringify({ withhold: [{ field: "category", in: ["family"] }], strip: ["notes"] });
  const items = [
    '{"id":"a","lastModified":"2026-01-12T10:00:00Z"}',
    '{"id":"b","lastModified":"2026-01-12T12:00:00+02:00","notes":"x"}',
    '{"id":"c","category":"family","lastModified":"2026-01-12T10:00:00Z"}',
  ];
  const [out, redacted] = sdk.crossBatch(Contacts, [], [], policy, items);
  assert.deepEqual(out[0], [null, "kept"]);
  assert.deepEqual(out[1], ['{"id":"b","lastModified":"2026-01-12T10:00:00Z","notes":"x"}',
    ["changed", '{"id":"b","lastModified":"2026-01-12T10:00:00Z"}']]);
  assert.deepEqual(out[2], [null, "withheld"]);
  assert.equal(redacted, 1);
  assert.equal(sdk.crossBatch(Contacts, [], [], null, items.slice(1, 2))[0][0][1], "kept");
});

test("the export speaks the WIT interface's shapes", () => {
  const plugin = sdk.exportPlugin({ entityType: "contacts", version: "0.0.1", itemSchema: "{}" });
  assert.equal(plugin.describe().interfaceVersion, "1.1.0");
  const r = plugin.crossBatch({ fromFields: [], toFields: [], policy: '{"strip":["x"]}',
    items: ['{"id":"a","x":1}', '{"id":"b"}'] });
  assert.deepEqual(r, {
    items: [{ mapped: undefined, outcome: { tag: "changed", val: '{"id":"a"}' } },
      { mapped: undefined, outcome: { tag: "kept" } }],
    redactedFields: 1n,
  });
  // A PluginError is the call's error value: its message, as a string.
  assert.throws(() => plugin.mapBatch({ fromFields: [], toFields: [], items: ["[]"] }),
    (e) => e === "item 0 is not a JSON object");
  assert.throws(() => sdk.exportPlugin({ entityType: "x" }), TypeError);
});
