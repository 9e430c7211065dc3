// The plugin's own tests, run natively by Node (no component): `npm test`.
import assert from "node:assert/strict";
import { test } from "node:test";
import { declare, filterBatch, mapBatch } from "./cds_plugin.js";
import { declarations } from "./app.js";

const plugin = declare(declarations);

test("owner and due are normalised and unknown fields kept", () => {
  const s = '{"id":"a","title":"t","owner":" Ann@Example.COM ","due":"2026-03-31T17:00:00+02:00","x":{"n":2.50},"lastModified":"2026-01-12T10:00:00Z"}';
  assert.deepEqual(mapBatch(plugin, [], [], [s]), [
    '{"id":"a","title":"t","owner":"ann@example.com","due":"2026-03-31T15:00:00Z","x":{"n":2.50},"lastModified":"2026-01-12T10:00:00Z"}',
  ]);
});

test("the policy withholds and strips", () => {
  const policy = JSON.stringify({ withhold: [{ field: "category", in: ["personal"] }], strip: ["notes"] });
  const [kept, withheld, redacted] = filterBatch(plugin, policy, [
    '{"id":"a","category":"personal","lastModified":"2026-01-12T10:00:00Z"}',
    '{"id":"b","notes":"n","lastModified":"2026-01-12T10:00:00Z"}',
  ]);
  assert.deepEqual(withheld, ["a"]);
  assert.deepEqual(kept, ['{"id":"b","lastModified":"2026-01-12T10:00:00Z"}']);
  assert.equal(redacted, 1);
});
