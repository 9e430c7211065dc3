"""The `notes` entity plugin in Python: the same plugin as
`examples/plugins/notes` (Rust), built with componentize-py. See
docs/plugins.md, "A plugin in Python"."""

import cds_plugin


class Notes(cds_plugin.EntityPlugin):
    ENTITY_TYPE = "notes"
    VERSION = "1.0.0"
    ITEM_SCHEMA = cds_plugin.schema_file(__file__, "schema.json")
    # `lastModified` is always normalised to UTC; name the other timestamps.
    TIMESTAMP_FIELDS = ("remindAt",)

    @staticmethod
    def normalize(item):
        """Notes' own normalisation: a trimmed title, tags lower-cased,
        sorted, without duplicates."""
        if isinstance(item.get("title"), str):
            item["title"] = item["title"].strip()
        if isinstance(item.get("tags"), list):
            item["tags"] = sorted({t.strip().lower() for t in item["tags"] if isinstance(t, str)})


# componentize-py exports the class bound to this name.
Plugin = cds_plugin.export(Notes)
