"""The plugin's own tests, run natively (no component): `python3 test_app.py`."""

import json
import unittest

import cds_plugin
from app import Plugin_


class PluginTests(unittest.TestCase):
    def test_owner_and_due_are_normalised_and_unknown_fields_kept(self):
        s = ('{"id":"a","title":"t","owner":" Ann@Example.COM ","due":"2026-03-31T17:00:00+02:00",'
             '"x":{"n":2.50},"lastModified":"2026-01-12T10:00:00Z"}')
        out = cds_plugin.map_batch(Plugin_, [], [], [s])
        self.assertEqual(out[0], '{"id":"a","title":"t","owner":"ann@example.com","due":"2026-03-31T15:00:00Z",'
                                 '"x":{"n":2.50},"lastModified":"2026-01-12T10:00:00Z"}')

    def test_the_policy_withholds_and_strips(self):
        policy = json.dumps({"withhold": [{"field": "category", "in": ["personal"]}], "strip": ["notes"]})
        items = ['{"id":"a","category":"personal","lastModified":"2026-01-12T10:00:00Z"}',
                 '{"id":"b","notes":"n","lastModified":"2026-01-12T10:00:00Z"}']
        kept, withheld, redacted = cds_plugin.filter_batch(Plugin_, policy, items)
        self.assertEqual(withheld, ["a"])
        self.assertEqual(kept, ['{"id":"b","lastModified":"2026-01-12T10:00:00Z"}'])
        self.assertEqual(redacted, 1)


if __name__ == "__main__":
    unittest.main()
