// The item schema of `notes` (JSON Schema 2020-12), the same as the Rust and
// Python examples' schema.json. componentize-js cannot import a JSON file,
// so it is a module.
export default {
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "$id": "urn:cross-domain-sync:entity:notes",
  "title": "notes",
  "description": "A short note: a title, a body, tags, an optional reminder.",
  "type": "object",
  "required": [
    "id",
    "lastModified",
    "title"
  ],
  "properties": {
    "id": {
      "type": "string",
      "minLength": 1,
      "maxLength": 256
    },
    "lastModified": {
      "type": "string",
      "format": "date-time"
    },
    "category": {
      "type": "string"
    },
    "syncedAt": {
      "type": "string",
      "format": "date-time"
    },
    "syncDirection": {
      "type": "string"
    },
    "title": {
      "type": "string",
      "minLength": 1
    },
    "body": {
      "type": "string"
    },
    "tags": {
      "type": "array",
      "items": {
        "type": "string"
      }
    },
    "pinned": {
      "type": "boolean"
    },
    "remindAt": {
      "type": "string",
      "format": "date-time"
    }
  },
  "additionalProperties": true
};
