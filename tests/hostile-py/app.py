"""A hostile entity plugin in Python, for host/tests/sandbox.rs: the first
item's `mode` field says how it misbehaves inside the host's deny-all WASI
world. Each attempt that the sandbox stops fails the call with a message
saying what was refused; an attempt that got through would say what it got,
and the test would fail on that message. Other items go through the policy
honestly (the guest library's), so that `behave` works."""

import json
import os
import sys

import cds_plugin
from componentize_py_types import Err
from wit_world import exports
from wit_world.exports import plugin as wit


def misbehave(mode, first):
    if mode == "read-file":
        try:
            with open("/etc/passwd", "rb") as f:
                got = f.read()
        except OSError as e:
            raise Err(f"cannot read /etc/passwd: {e}")
        raise Err(f"read /etc/passwd: {len(got)} bytes")
    if mode == "list-root":
        for d in ("/", "."):
            try:
                names = os.listdir(d)
            except OSError as e:
                raise Err(f"cannot list {d}: {e}")
            if names:
                raise Err(f"listed {d}: {names[:5]}")
    if mode == "env":
        env = dict(os.environ)
        if env or sys.argv[1:]:
            raise Err(f"saw environment {sorted(env)[:5]} and arguments {sys.argv}")
        raise Err("no environment variables and no arguments")
    if mode == "socket":
        port = first.get("port", 9)
        try:
            import socket

            s = socket.create_connection(("127.0.0.1", port), timeout=1)
        except Exception as e:  # ImportError where CPython has no sockets
            raise Err(f"cannot connect to 127.0.0.1:{port}: {e!r}")
        s.close()
        raise Err(f"connected to 127.0.0.1:{port}")
    if mode == "loop":
        x = 1
        while x != 42:
            x = (x * 6364136223846793005 + 1) % (1 << 64)
    if mode == "membomb":
        hoard = []
        while True:
            hoard.append(bytearray(16 << 20))


class Plugin(exports.Plugin):
    def describe(self):
        return wit.Descriptor(
            entity_type="hostile",
            plugin_version="0.1.0",
            interface_version=cds_plugin.INTERFACE_VERSION,
            item_schema='{"type":"object","required":["id","lastModified"]}',
            id_field="id",
        )

    def map_batch(self, request):
        return list(request.items)

    def filter_batch(self, request):
        raise Err("not called by a 1.1 host")

    def cross_batch(self, request):
        items = [json.loads(s) for s in request.items]
        if items:
            misbehave(items[0].get("mode", ""), items[0])
        policy = None if request.policy is None else cds_plugin.Policy.parse(request.policy)
        out, redacted = [], 0
        for item, s in zip(items, request.items):
            if policy is None:
                out.append(wit.Crossed(mapped=None, outcome=wit.Outcome_Kept()))
                continue
            kept, n = policy.apply(dict(item), "id")
            redacted += n
            if kept is None:
                outcome = wit.Outcome_Withheld()
            elif kept == item:
                outcome = wit.Outcome_Kept()
            else:
                outcome = wit.Outcome_Changed(json.dumps(kept, separators=(",", ":")))
            out.append(wit.Crossed(mapped=None, outcome=outcome))
        return wit.CrossResult(items=out, redacted_fields=redacted)
