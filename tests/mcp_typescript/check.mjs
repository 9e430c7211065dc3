// A second real MCP client this project did not write: the official
// TypeScript SDK (`@modelcontextprotocol/sdk` from npm, installed by
// tests/run.sh under target/npm) launches `cross-domain-sync serve` over
// stdio: the handshake, tools/list, a valid and an invalid call, progress,
// cancellation, resources (the result's links, templates, reads),
// confirmation by elicitation (accept and decline), and no warning from the SDK (its Ajv validator warns of any
// schema keyword it does not know, e.g. a non-standard `format`).
//
// Usage: node tests/mcp_typescript/check.mjs PATH/TO/cross-domain-sync SDK_DIR
// Prints one line per check and a closing "N passed, N failed".
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { spawnSync } from "node:child_process";

const [bin, sdkDir] = process.argv.slice(2);
if (!bin || !sdkDir) {
  console.error("usage: node check.mjs BIN SDK_DIR");
  process.exit(2);
}
const sdk = (p) => pathToFileURL(path.join(sdkDir, "@modelcontextprotocol/sdk/dist/esm", p)).href;
const { Client } = await import(sdk("client/index.js"));
const { StdioClientTransport } = await import(sdk("client/stdio.js"));
const { ElicitRequestSchema } = await import(sdk("types.js"));

// Everything the SDK would print: each is a failure of this check.
const warnings = [];
for (const level of ["warn", "error", "log", "info"]) {
  const original = console[level];
  console[level] = (...args) => {
    warnings.push(`console.${level}: ${args.map(String).join(" ")}`);
    if (level !== "log") original(...args);
  };
}
const print = (s) => process.stdout.write(s + "\n");

const TOOL = "gold_cross_domain_sync";
const results = [];
const check = (name, ok, detail = "") => results.push([name, Boolean(ok), detail]);

// Every scratch folder made, removed when the checks end (pass or fail).
const scratchDirs = [];
const mkScratch = () => {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), "cds-ts-"));
  scratchDirs.push(d);
  return d;
};

function scratch() {
  const d = mkScratch();
  for (const dom of ["personal", "business"]) fs.mkdirSync(path.join(d, "data", dom), { recursive: true });
  fs.writeFileSync(
    path.join(d, "data", "personal", "contacts.json"),
    JSON.stringify({
      contacts: [
        { id: "c1", name: "Ann", category: "business", notes: "private", lastModified: "2026-01-12T10:00:00Z" },
        { id: "c2", name: "Mum", category: "family", lastModified: "2026-01-12T10:00:00Z" },
      ],
    }),
  );
  fs.writeFileSync(
    path.join(d, "data", "personal", "tasks.json"),
    JSON.stringify({ tasks: [{ id: "t1", title: "Plan", status: "todo", category: "business", lastModified: "2026-01-12T10:00:00Z" }] }),
  );
  return d;
}

async function session(dir, env = {}, capabilities = {}, onElicit = null) {
  const transport = new StdioClientTransport({
    command: bin,
    args: ["serve"],
    cwd: dir,
    env: { ...process.env, CDS_USER: "ts-client", ...env },
    stderr: "pipe",
  });
  let serverLog = "";
  transport.stderr?.on("data", (b) => (serverLog += b));
  const client = new Client({ name: "cds-ts-check", version: "1.0.0" }, { capabilities });
  if (onElicit) client.setRequestHandler(ElicitRequestSchema, onElicit);
  await client.connect(transport);
  return { client, log: () => serverLog };
}

const audit = (dir) =>
  fs.existsSync(path.join(dir, "data/audit/audit.jsonl"))
    ? fs.readFileSync(path.join(dir, "data/audit/audit.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l))
    : [];

async function main() {
  const dir = scratch();
  const { client } = await session(dir);
  const version = client.getServerVersion();
  check("handshake", version?.name === "cross-domain-sync", JSON.stringify(version));

  const { tools } = await client.listTools();
  const names = tools.map((t) => t.name);
  check("tools/list: portable names", names.includes(TOOL) && names.every((n) => /^[a-zA-Z0-9_-]{1,64}$/.test(n)), names.join(", "));
  const sync = tools.find((t) => t.name === TOOL);
  check("the output schema is the sync record", sync?.outputSchema?.properties?.syncId !== undefined);

  const progress = [];
  const ok = await client.callTool(
    { name: TOOL, arguments: { source: "personal", target: "business", entities: ["contacts", "tasks"] } },
    undefined,
    { onprogress: (p) => progress.push(p) },
  );
  check("a valid call syncs", !ok.isError && ok.structuredContent?.status === "success", JSON.stringify(ok.structuredContent));
  const business = JSON.parse(fs.readFileSync(path.join(dir, "data/business/contacts.json"), "utf8")).contacts;
  check("the policy held", business.length === 1 && business[0].id === "c1" && business[0].notes === undefined, JSON.stringify(business));
  check("progress arrived, per entity type", progress.length >= 2, JSON.stringify(progress));

  // Resources: the result links its record; templates, list and read.
  const link = (ok.content ?? []).find((c) => c.type === "resource_link");
  const recordUri = `cross-domain-sync://sync/${ok.structuredContent?.syncId}`;
  check("the result links its sync record", link?.uri === recordUri, JSON.stringify(ok.content));
  const { resourceTemplates } = await client.listResourceTemplates();
  check(
    "resources/templates/list",
    resourceTemplates.some((t) => t.uriTemplate.startsWith("cross-domain-sync://sync/{syncId}")),
    JSON.stringify(resourceTemplates),
  );
  const { resources } = await client.listResources();
  check("resources/list holds the record", resources.some((r) => r.uri === recordUri), JSON.stringify(resources));
  const read = await client.readResource({ uri: recordUri });
  const rec = JSON.parse(read.contents?.[0]?.text ?? "null");
  check("resources/read gives the record", rec?.syncId === ok.structuredContent?.syncId, JSON.stringify(read));
  const verify = JSON.parse((await client.readResource({ uri: "cross-domain-sync://audit/verify" })).contents[0].text);
  check("the audit trail verifies through a resource", verify.ok === true && verify.entries >= 1, JSON.stringify(verify));

  const bad = await client.callTool({ name: TOOL, arguments: { source: "personal", target: "business", direction: "sideways" } });
  const err = bad.structuredContent?.errors?.[0];
  check("an invalid call is a tool error naming its path", bad.isError && err?.code === "INVALID_ARGUMENT" && JSON.stringify(err.paths ?? []).includes("direction"), JSON.stringify(bad.structuredContent));
  await client.close();

  // Cancellation: each type's work is held up (the test build's delay hook),
  // the call is aborted at its first progress; the server rolls it back,
  // audits it, and answers the next call.
  const dir2 = scratch();
  const before = fs.readFileSync(path.join(dir2, "data/personal/contacts.json"), "utf8");
  const slow = await session(dir2, { CDS_FAULT_DELAY_MS: "1500" });
  const abort = new AbortController();
  let aborted = false;
  try {
    await slow.client.callTool(
      { name: TOOL, arguments: { source: "personal", target: "business", direction: "bidirectional", entities: ["contacts", "tasks"] } },
      undefined,
      { signal: abort.signal, onprogress: () => abort.abort("the user changed their mind") },
    );
  } catch (e) {
    aborted = true;
  }
  check("a cancelled call is rejected on the client", aborted);
  const until = Date.now() + 60_000;
  while (!audit(dir2).some((e) => e.outcome === "failed") && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
  check("the cancelled sync is audited as failed", audit(dir2).some((e) => e.outcome === "failed"), JSON.stringify(audit(dir2)));
  check(
    "the cancelled sync changed nothing",
    !fs.existsSync(path.join(dir2, "data/business/contacts.json")) &&
      fs.readFileSync(path.join(dir2, "data/personal/contacts.json"), "utf8") === before,
  );
  const after = await slow.client.callTool({ name: TOOL, arguments: { source: "personal", target: "business", entities: ["tasks"], dryRun: true } });
  check("the server answers after a cancellation", after.structuredContent?.status === "dry_run", JSON.stringify(after.structuredContent));
  await slow.client.close();

  // Confirmation: a sync the mass-delete guard stops is put to the user.
  for (const [answer, deletes] of [
    [{ action: "accept", content: { confirm: true } }, true],
    [{ action: "decline" }, false],
  ]) {
    const d = emptiedBusiness();
    const asked = [];
    const s = await session(d, {}, { elicitation: { form: {} } }, async (req) => {
      asked.push(req.params);
      return answer;
    });
    const r = await s.client.callTool({ name: TOOL, arguments: { source: "personal", target: "business", direction: "bidirectional", entities: ["contacts"] } });
    const left = JSON.parse(fs.readFileSync(path.join(d, "data/personal/contacts.json"), "utf8")).contacts;
    check(
      `elicitation: the user is asked before a mass deletion (${answer.action})`,
      asked.length === 1 && /would delete 2 contacts items/.test(asked[0].message ?? ""),
      JSON.stringify(asked),
    );
    check(
      deletes ? "elicitation accepted: the deletions are made" : "elicitation declined: nothing is deleted",
      deletes ? !r.isError && left.length === 0 : r.isError && left.length === 2,
      JSON.stringify(r.structuredContent),
    );
    await s.client.close();
  }
  check("the SDK printed no warning", warnings.length === 0, warnings.join(" | "));
}

// Two business contacts both domains agreed on; then business's file emptied.
function emptiedBusiness() {
  const d = mkScratch();
  const contacts = ["c1", "c2"].map((id) => ({ id, name: id, category: "business", lastModified: "2026-01-12T10:00:00Z" }));
  for (const dom of ["personal", "business"]) {
    fs.mkdirSync(path.join(d, "data", dom), { recursive: true });
    fs.writeFileSync(path.join(d, "data", dom, "contacts.json"), JSON.stringify({ contacts }));
  }
  const first = spawnSync(bin, ["--source", "personal", "--target", "business", "--direction", "bidirectional", "--entities", "contacts"], {
    cwd: d,
    env: { ...process.env, CDS_USER: "ts-client" },
  });
  if (first.status !== 0) throw new Error(`the first sync failed: ${first.stderr}`);
  fs.writeFileSync(path.join(d, "data", "business", "contacts.json"), JSON.stringify({ contacts: [] }));
  return d;
}

try {
  await main();
} catch (e) {
  results.push(["the checks ran to their end", false, String(e?.stack ?? e)]);
} finally {
  for (const d of scratchDirs) fs.rmSync(d, { recursive: true, force: true });
}
let failed = 0;
for (const [name, ok, detail] of results) {
  print(`${ok ? "ok  " : "FAIL"} ${name}${ok ? "" : ` (${detail})`}`);
  if (!ok) failed += 1;
}
print(`${results.length - failed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
