"""The `{{name}}` entity plugin for cross-domain-sync, in Python. The guest
library (cds_plugin.py) does the renames, the normalisation these
declarations ask for, and the crossing's policy; see README.md."""

import cds_plugin


class Plugin_(cds_plugin.EntityPlugin):
    ENTITY_TYPE = "{{name}}"
    VERSION = "0.1.0"
    ITEM_SCHEMA = cds_plugin.schema_file(__file__, "schema.json")
    # Trimmed and lower-cased.
    EMAIL_FIELDS = ("owner",)
    # Converted to UTC with `Z` (`lastModified` always is).
    TIMESTAMP_FIELDS = ("due",)


# componentize-py exports the class bound to this name.
Plugin = cds_plugin.export(Plugin_)
