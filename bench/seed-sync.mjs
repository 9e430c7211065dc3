// The seed's sync algorithm, as `../shared/seed/cross-domain-sync-skill.md`
// gives it, in Node: the yardstick of issue 17 (B1 ÷ this, no more than 0.6).
// Written by this project from the seed's description; no dependency (the
// seed's `fs-extra` readJson/writeJson are JSON.parse/JSON.stringify with two
// spaces, which is what it does).
//
// What it does, per entity type, in the working directory: read
// data/<source>/<type>.json and data/<target>/<type>.json (a missing file is
// an empty list), merge by id with the seed's `mergeDataArrays` (target's
// items first, then source's over them, each stamped with syncedAt and
// syncDirection), write the merged list to the target (and, bidirectional,
// to the source too: the seed's "combines data from both domains"), then
// write a sync record. No validation, no sandbox, no policy, no base, no
// audit: everything the product adds is missing here, on purpose.
//
// Usage: node bench/seed-sync.mjs --source personal --target business
//        [--direction bidirectional|source_to_target|target_to_source]
//        [--entities contacts,calendar,...]
import { promises as fs } from "node:fs";
import path from "node:path";

const args = process.argv.slice(2);
const opt = (name, fallback) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && i + 1 < args.length ? args[i + 1] : fallback;
};
const source_domain = opt("source");
const target_domain = opt("target");
const direction = opt("direction", "source_to_target");
const entities = opt("entities", "contacts,calendar,tasks,documents,communications").split(",");
if (!source_domain || !target_domain) {
  console.error("usage: node bench/seed-sync.mjs --source A --target B [--direction D] [--entities E,...]");
  process.exit(2);
}

async function readJson(file, entity) {
  try {
    return JSON.parse(await fs.readFile(file, "utf8"))[entity] ?? [];
  } catch (e) {
    if (e.code === "ENOENT") return [];
    throw e;
  }
}

async function writeJson(file, value) {
  await fs.mkdir(path.dirname(file), { recursive: true });
  await fs.writeFile(file, JSON.stringify(value, null, 2) + "\n");
}

// The seed's merge, as given (source and target named by the caller).
function mergeDataArrays(sourceArray, targetArray, from, to) {
  const mergedMap = new Map();
  targetArray.forEach((item) => {
    if (item.id) {
      mergedMap.set(item.id, item);
    }
  });
  sourceArray.forEach((item) => {
    if (item.id) {
      mergedMap.set(item.id, {
        ...item,
        syncedAt: new Date().toISOString(),
        syncDirection: `${from}->${to}`,
      });
    }
  });
  return Array.from(mergedMap.values());
}

const started = Date.now();
const results = {};
for (const entity of entities) {
  const file = (d) => path.join(process.cwd(), `data/${d}/${entity}.json`);
  const [from, to] =
    direction === "target_to_source" ? [target_domain, source_domain] : [source_domain, target_domain];
  const sourceData = await readJson(file(from), entity);
  const targetData = await readJson(file(to), entity);
  const merged = mergeDataArrays(sourceData, targetData, from, to);
  await writeJson(file(to), { [entity]: merged });
  if (direction === "bidirectional") {
    await writeJson(file(from), { [entity]: merged });
  }
  results[entity] = {
    sourceCount: sourceData.length,
    targetCount: targetData.length,
    mergedCount: merged.length,
  };
}
const now = new Date();
const syncId = `sync-${now.toISOString().replace(/[-:]/g, "").replace("T", "-").slice(0, 15)}`;
await writeJson(path.join(process.cwd(), `data/sync-records/${syncId}.json`), {
  syncId,
  timestamp: now.toISOString(),
  sourceDomain: source_domain,
  targetDomain: target_domain,
  entities,
  syncDirection: direction,
  durationMs: Date.now() - started,
  results,
  errors: [],
  status: "success",
});
