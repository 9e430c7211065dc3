// The `notes` entity plugin in JavaScript: the same plugin as
// `examples/plugins/notes` (Rust), built with componentize-js. See
// docs/plugins.md, "A plugin in JavaScript".
import { byCodePoint, exportPlugin, trim } from "./cds_plugin.js";
import schema from "./schema.js";

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
      // Sorted by code point, as the Rust and Python notes plugins sort them.
      item.tags = [...new Set(tags)].sort(byCodePoint);
    }
  },
});
