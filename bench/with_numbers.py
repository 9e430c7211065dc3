#!/usr/bin/env python3
"""Gives every item of a generated data folder numbers: a float score, a
[lat, lon] pair of floats, and an integer (96 bits wide in contacts, beyond
64 bits). The values come from the item's id, so an item both domains hold
gets the same ones. Usage: bench/with_numbers.py DIR (as `generate data
--out DIR` wrote it). Measures what exact numbers cost (BENCHMARKS.md)."""
import glob, hashlib, json, os, sys

root = sys.argv[1]
for f in glob.glob(os.path.join(root, "data", "*", "*.json")):
    entity = os.path.basename(f)[:-5]
    d = json.load(open(f))
    for it in d[entity]:
        h = hashlib.sha256(it["id"].encode()).digest()
        a = int.from_bytes(h[:8], "big") / 2**64
        b = int.from_bytes(h[8:16], "big") / 2**64
        it["x-score"] = a * 1000
        it["x-geo"] = [b * 180 - 90, a * 360 - 180]
        wide = 12 if entity == "contacts" else 4
        it["x-big"] = int.from_bytes(h[16 : 16 + wide], "big")
    json.dump(d, open(f, "w"), indent=2)
