"""A real MCP client this project did not write: the official Python SDK (`mcp` from PyPI)
launches `cross-domain-sync serve` over stdio, lists the tools and calls the sync with valid
and invalid arguments, with progress, after the 2025-11-25 handshake; then again on the
handshake-free revision 2026-07-28, with a resource read. Run by tests/run.sh in a virtual
environment.

Usage: python test_python_sdk.py PATH/TO/cross-domain-sync
Prints one line per check and a closing "N passed, N failed".
"""
import asyncio
import json
import os
import shutil
import sys
import tempfile
import traceback

from mcp import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client

BIN = os.path.abspath(sys.argv[1])
TOOL = "gold_cross_domain_sync"


def scratch() -> str:
    d = tempfile.mkdtemp(prefix="cds-py-")
    for dom in ("personal", "business"):
        os.makedirs(os.path.join(d, "data", dom))
    with open(os.path.join(d, "data", "personal", "contacts.json"), "w") as f:
        json.dump({"contacts": [
            {"id": "c1", "name": "Ann", "category": "business", "notes": "private",
             "lastModified": "2026-01-12T10:00:00Z"},
            {"id": "c2", "name": "Mum", "category": "family", "lastModified": "2026-01-12T10:00:00Z"},
        ]}, f)
    return d


async def checks(results):
    d = scratch()
    env = dict(os.environ)
    env["CDS_USER"] = "py-client"
    params = StdioServerParameters(command=BIN, args=["serve"], cwd=d, env=env)
    try:
        async with stdio_client(params) as (read, write):
            async with ClientSession(read, write) as session:
                init = await session.initialize()

                def check(name, ok, detail=""):
                    results.append((name, bool(ok), detail))

                print(f"negotiated MCP revision {init.protocol_version}")
                check("handshake", init.server_info.name == "cross-domain-sync",
                      f"protocol {init.protocol_version}")

                tools = (await session.list_tools()).tools
                names = [t.name for t in tools]
                sync = next((t for t in tools if t.name == TOOL), None)
                check("tools/list has the sync tool", sync is not None, str(names))
                check("inputSchema lists the domains",
                      sync is not None and sync.input_schema["properties"]["source"]["enum"] == ["personal", "business"])
                check("outputSchema is the sync record", sync is not None and sync.output_schema is not None
                      and "syncId" in sync.output_schema["properties"])

                progress = []

                async def on_progress(p, total, message):
                    progress.append((p, total, message))

                ok = await session.call_tool(
                    TOOL, {"source": "personal", "target": "business", "entities": ["contacts"]},
                    progress_callback=on_progress)
                rec = ok.structured_content or {}
                check("a valid call syncs", not ok.is_error and rec.get("status") == "success", json.dumps(rec)[:200])
                check("the policy held", rec.get("results", {}).get("contacts", {}).get("withheld") == 1)
                with open(os.path.join(d, "data", "business", "contacts.json")) as f:
                    written = json.load(f)["contacts"]
                check("the business domain got one contact, without notes",
                      len(written) == 1 and "notes" not in written[0], str(written))
                check("progress arrived", len(progress) >= 2, str(progress))
                check("the user came from the server's environment", rec.get("user") == "py-client")

                bad = await session.call_tool(TOOL, {"source": "personal", "target": "personal"})
                err = (bad.structured_content or {}).get("errors", [{}])[0]
                check("source = target is a tool error", bad.is_error and err.get("code") == "INVALID_ARGUMENT", str(err))

                bad = await session.call_tool(TOOL, {"source": "personal", "target": "business",
                                                     "direction": "sideways"})
                err = (bad.structured_content or {}).get("errors", [{}])[0]
                check("a bad direction names its path", bad.is_error and "$.direction" in err.get("paths", []), str(err))
    finally:
        shutil.rmtree(d, ignore_errors=True)


async def stateless_checks(results):
    """The handshake-free revision 2026-07-28, as the SDK's `Client` speaks it when it finds
    the server supports it (`mode="auto"` probes `server/discover`)."""
    from mcp.client.client import Client

    d = scratch()
    env = dict(os.environ)
    env["CDS_USER"] = "py-client"
    params = StdioServerParameters(command=BIN, args=["serve"], cwd=d, env=env)

    def check(name, ok, detail=""):
        results.append(("2026-07-28: " + name, bool(ok), detail))

    try:
        async with Client(params, mode="auto") as client:
            check("negotiated without a handshake", client.protocol_version == "2026-07-28",
                  client.protocol_version)
            names = [t.name for t in (await client.list_tools()).tools]
            check("tools/list", TOOL in names, str(names))
            ok = await client.call_tool(TOOL, {"source": "personal", "target": "business",
                                               "entities": ["contacts"]})
            rec = ok.structured_content or {}
            check("a valid call syncs", not ok.is_error and rec.get("status") == "success",
                  json.dumps(rec)[:200])
            links = [c.uri for c in ok.content if getattr(c, "type", None) == "resource_link"]
            check("the result links its record", links == [f"cross-domain-sync://sync/{rec.get('syncId')}"],
                  str(links))
            read = await client.read_resource(links[0] if links else "cross-domain-sync://audit/verify")
            body = json.loads(read.contents[0].text)
            check("resources/read gives the record", body.get("syncId") == rec.get("syncId"), str(body)[:200])
    finally:
        shutil.rmtree(d, ignore_errors=True)


def main():
    results = []
    for run in (checks, stateless_checks):
        try:
            asyncio.run(run(results))
        except Exception:
            traceback.print_exc()
            results.append((f"{run.__name__} ran to its end", False, "exception"))
    failed = 0
    for name, ok, detail in results:
        print(f"{'ok  ' if ok else 'FAIL'} {name}" + ("" if ok else f": {detail}"))
        failed += not ok
    print(f"{len(results) - failed} passed, {failed} failed")
    sys.exit(1 if failed or not results else 0)


if __name__ == "__main__":
    main()
