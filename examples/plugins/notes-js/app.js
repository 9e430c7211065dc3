// The `notes` entity plugin in JavaScript: the same plugin as
// `examples/plugins/notes` (Rust), built with componentize-js. See
// docs/plugins.md, "A plugin in JavaScript".
import { exportPlugin, trim } from "./cds_plugin.js";
import schema from "./schema.js";

// Compares strings by code point, as Rust and Python sort them (JavaScript's
// default sort compares UTF-16 units, which orders emoji differently).
const byCodePoint = (a, b) => {
  const x = [...a];
  const y = [...b];
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    if (x[i] !== y[i]) return x[i].codePointAt(0) - y[i].codePointAt(0);
  }
  return x.length - y.length;
};

export const plugin = exportPlugin({
  entityType: "notes",
  version: "1.0.0",
  itemSchema: schema,
  // `lastModified` is always normalised to UTC; name the other timestamps.
  timestampFields: ["remindAt"],

  /** Notes' own normalisation: a trimmed title, tags lower-cased, sorted,
   * without duplicates. */
  normalize(item) {
    if (typeof item.title === "string") item.title = trim(item.title);
    if (Array.isArray(item.tags)) {
      const tags = item.tags.filter((t) => typeof t === "string").map((t) => trim(t).toLowerCase());
      item.tags = [...new Set(tags)].sort(byCodePoint);
    }
  },
});
