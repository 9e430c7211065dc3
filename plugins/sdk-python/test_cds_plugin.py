"""Unit tests of the Python guest library, run natively (no component):
`python3 plugins/sdk-python/test_cds_plugin.py`. The cases mirror the Rust
SDK's and cds-policy's; host/tests/notes_plugin.rs holds the built
components of both languages equal on the same data."""

import json
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cds_plugin as sdk  # noqa: E402


class Rename:
    def __init__(self, canonical, local):
        self.canonical, self.local = canonical, local


class Contacts(sdk.EntityPlugin):
    ENTITY_TYPE = "contacts"
    VERSION = "0.0.1"
    ITEM_SCHEMA = "{}"
    EMAIL_FIELDS = ("email",)
    PHONE_FIELDS = ("phone",)
    TIMESTAMP_FIELDS = ("birthday",)


class Normalisation(unittest.TestCase):
    def test_phones_emails_timestamps(self):
        self.assertEqual(sdk.normalize_email("  Ann@Example.COM "), "ann@example.com")
        self.assertEqual(sdk.normalize_phone(" +1 (555) 010-2000 "), "+15550102000")
        self.assertEqual(sdk.normalize_phone("+1-555-6468 ext. 2"), "+1-555-6468 ext. 2")
        self.assertEqual(sdk.normalize_phone("1+2"), "1+2")
        self.assertEqual(sdk.normalize_phone(" + "), "+")
        self.assertEqual(sdk.normalize_address("B@X.org"), "b@x.org")
        self.assertEqual(sdk.normalize_address("555.1234"), "5551234")
        ts = sdk.normalize_timestamp
        self.assertEqual(ts("2026-01-12T12:00:00+02:00"), "2026-01-12T10:00:00Z")
        self.assertEqual(ts("2026-01-12T10:00:00.5Z"), "2026-01-12T10:00:00.500Z")
        self.assertEqual(ts("2026-01-12t10:00:00.123456z"), "2026-01-12T10:00:00.123456Z")
        self.assertEqual(ts("2026-01-12T10:00:00.000000001Z"), "2026-01-12T10:00:00.000000001Z")
        self.assertEqual(ts("2026-01-12T10:00:00.000Z"), "2026-01-12T10:00:00Z")
        self.assertEqual(ts("2026-01-01T00:30:00+01:00"), "2025-12-31T23:30:00Z")
        for bad in ("yesterday", "2026-01-12", "2026-13-01T00:00:00Z", "２０２６-01-12T10:00:00Z"):
            with self.assertRaises(sdk.PluginError, msg=bad):
                ts(bad)

    def test_map_renames_normalises_and_keeps_unknown_fields(self):
        items = [json.dumps({"id": "a", "mail": " A@B.C ", "lastModified": "2026-01-12T12:00:00+02:00",
                             "x-vendor": {"deep": [1, 2.5]}})]
        out = sdk.map_batch(Contacts, [Rename("email", "mail")], [Rename("email", "e-mail")], items)
        self.assertEqual(json.loads(out[0]), {"id": "a", "e-mail": "a@b.c",
                                              "lastModified": "2026-01-12T10:00:00Z",
                                              "x-vendor": {"deep": [1, 2.5]}})
        self.assertEqual(list(json.loads(out[0])), ["id", "e-mail", "lastModified", "x-vendor"])

    def test_numbers_come_back_exactly_as_written(self):
        s = '{"id":"a","big":12345678901234567890,"x":{"b":2.50,"1":1E+2,"a":-0},"n":[1.0,0.1],"h":' + "9" * 5000 + "}"
        self.assertEqual(sdk.map_batch(Contacts, [], [], [s]), [s])
        out, _ = sdk.cross_batch(Contacts, [], [], '{"strip":["n","h"]}', [s])
        self.assertEqual(out[0], (None, ("changed", '{"id":"a","big":12345678901234567890,"x":{"b":2.50,"1":1E+2,"a":-0}}')))
        # Numbers compare as written, as serde_json's do.
        rule = sdk.Rule({"field": "n", "in": [sdk.loads("2.50")]}, "r")
        self.assertTrue(rule.matches(sdk.loads('{"n":2.50}')))
        self.assertFalse(rule.matches(sdk.loads('{"n":2.5}')))

    def test_errors_name_the_item(self):
        with self.assertRaisesRegex(sdk.PluginError, r"item 1 \(id b\): lastModified: .*not an RFC 3339"):
            sdk.map_batch(Contacts, [], [], ['{"id":"a"}', '{"id":"b","lastModified":"soon"}'])
        with self.assertRaisesRegex(sdk.PluginError, "item 0 is not a JSON object"):
            sdk.map_batch(Contacts, [], [], ["[1]"])
        with self.assertRaisesRegex(sdk.PluginError, "unknown field `drop`"):
            sdk.filter_batch(Contacts, '{"drop":[]}', [])


class Policies(unittest.TestCase):
    def test_withhold_reduce_strip(self):
        policy = json.dumps({
            "withhold": [{"field": "category", "in": ["family"]}],
            "reduce": [{"when": [{"field": "visibility", "in": ["private"]}],
                        "keep": ["start"], "set": {"title": "Busy"}}],
            "strip": ["notes"],
        })
        items = [json.dumps(i) for i in (
            {"id": "a", "category": ["work", "family"]},
            {"id": "b", "visibility": "private", "start": "s", "title": "Dentist", "notes": "n"},
            {"id": "c", "visibility": "private", "start": "s"},
            {"id": "d", "notes": "secret", "n": 1},
            {"id": "e", "category": None},
        )]
        kept, withheld, redacted = sdk.filter_batch(Contacts, policy, items)
        self.assertEqual(withheld, ["a"])
        self.assertEqual([json.loads(k) for k in kept], [
            {"id": "b", "start": "s", "title": "Busy"},
            {"id": "c", "start": "s", "title": "Busy"},
            {"id": "d", "n": 1},
            {"id": "e", "category": None},
        ])
        # b: visibility and notes removed, title replaced; c: visibility; d: notes.
        self.assertEqual(redacted, 3 + 1 + 1)

    def test_values_compare_as_json(self):
        rule = sdk.Rule({"field": "n", "in": [1]}, "r")
        self.assertTrue(rule.matches({"n": 1}))
        self.assertFalse(rule.matches({"n": 1.0}))
        self.assertFalse(rule.matches({"n": True}))
        self.assertFalse(rule.matches({}))

    def test_cross_batch_says_what_changed(self):
        policy = json.dumps({"withhold": [{"field": "category", "in": ["family"]}], "strip": ["notes"]})
        items = ['{"id":"a","lastModified":"2026-01-12T10:00:00Z"}',
                 '{"id":"b","lastModified":"2026-01-12T12:00:00+02:00","notes":"x"}',
                 '{"id":"c","category":"family","lastModified":"2026-01-12T10:00:00Z"}']
        out, redacted = sdk.cross_batch(Contacts, [], [], policy, items)
        self.assertEqual(out[0], (None, "kept"))
        self.assertEqual(out[1], ('{"id":"b","lastModified":"2026-01-12T10:00:00Z","notes":"x"}',
                                  ("changed", '{"id":"b","lastModified":"2026-01-12T10:00:00Z"}')))
        self.assertEqual(out[2], (None, "withheld"))
        self.assertEqual(redacted, 1)
        out, _ = sdk.cross_batch(Contacts, [], [], None, items[1:2])
        self.assertEqual(out[0][1], "kept")


if __name__ == "__main__":
    unittest.main()
