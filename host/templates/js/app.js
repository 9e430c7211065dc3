// The `{{name}}` entity plugin for cross-domain-sync, in JavaScript. The guest
// library (cds_plugin.js) does the renames, the normalisation these
// declarations ask for, and the crossing's policy; see README.md.
import { exportPlugin } from "./cds_plugin.js";
import schema from "./schema.js";

export const declarations = {
  entityType: "{{name}}",
  version: "0.1.0",
  itemSchema: schema,
  // Trimmed and lower-cased.
  emailFields: ["owner"],
  // Converted to UTC with `Z` (`lastModified` always is).
  timestampFields: ["due"],
};

// componentize-js exports this as the interface `gold:entity/plugin`.
export const plugin = exportPlugin(declarations);
