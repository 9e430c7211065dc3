// A hostile entity plugin in JavaScript, for host/tests/sandbox.rs: the first
// item's `mode` field says how it misbehaves inside the host's deny-all WASI
// world. Each attempt that the sandbox stops fails the call with a message
// saying what was refused; an attempt that got through would say what it got,
// and the test would fail on that message. Other items go through the policy
// honestly (the guest library's), so that `behave` works.
import { Policy, INTERFACE_VERSION, parse, stringify } from "./cds_plugin.js";
import { getDirectories } from "wasi:filesystem/preopens@0.2.12";
import { getArguments, getEnvironment } from "wasi:cli/environment@0.2.12";
import { instanceNetwork } from "wasi:sockets/instance-network@0.2.12";
import { createTcpSocket } from "wasi:sockets/tcp-create-socket@0.2.12";

/** What a WASI call threw, as text (a result's error arrives as `payload`). */
const why = (e) => {
  const v = e && typeof e === "object" && "payload" in e ? e.payload : e;
  return typeof v === "string" ? v : JSON.stringify(v) ?? String(v);
};

function openRoot(what) {
  const dirs = getDirectories();
  if (dirs.length === 0) throw `cannot ${what}: no folder is open to this plugin`;
  return dirs;
}

function misbehave(mode, first) {
  if (mode === "read-file") {
    for (const [dir] of openRoot("read /etc/passwd")) {
      let fd;
      try {
        fd = dir.openAt({}, "etc/passwd", {}, { read: true });
      } catch (e) {
        throw `cannot read /etc/passwd: ${why(e)}`;
      }
      const [bytes] = fd.read(1n << 16n, 0n);
      throw `read /etc/passwd: ${bytes.length} bytes`;
    }
  }
  if (mode === "list-root") {
    for (const [dir, name] of openRoot("list /")) {
      let names = [];
      try {
        const entries = dir.readDirectory();
        for (let e = entries.readDirectoryEntry(); e; e = entries.readDirectoryEntry()) names.push(e.name);
      } catch (e) {
        throw `cannot list ${name}: ${why(e)}`;
      }
      if (names.length) throw `listed ${name}: ${names.slice(0, 5)}`;
    }
  }
  if (mode === "env") {
    const env = getEnvironment();
    const args = getArguments();
    if (env.length || args.length) throw `saw environment ${env.map(([k]) => k).slice(0, 5)} and arguments ${args}`;
    throw "no environment variables and no arguments";
  }
  if (mode === "socket") {
    const port = first.port ?? 9;
    const where = `127.0.0.1:${port}`;
    let socket;
    try {
      socket = createTcpSocket("ipv4");
      socket.startConnect(instanceNetwork(), { tag: "ipv4", val: { port, address: [127, 0, 0, 1] } });
      socket.subscribe().block();
      socket.finishConnect();
    } catch (e) {
      throw `cannot connect to ${where}: ${why(e)}`;
    }
    throw `connected to ${where}`;
  }
  if (mode === "loop") {
    let x = 1;
    while (x !== 0.5) x = (x * 48271) % 2147483647;
  }
  if (mode === "membomb") {
    const hoard = [];
    for (;;) hoard.push(new Uint8Array(16 << 20).fill(1));
  }
}

export const plugin = {
  describe() {
    return {
      entityType: "hostile",
      pluginVersion: "0.1.0",
      interfaceVersion: INTERFACE_VERSION,
      itemSchema: '{"type":"object","required":["id","lastModified"]}',
      idField: "id",
    };
  },
  mapBatch(request) {
    return request.items;
  },
  filterBatch() {
    throw "not called by a 1.1 host";
  },
  crossBatch(request) {
    const items = request.items.map((s) => parse(s));
    if (items.length) misbehave(items[0].mode ?? "", items[0]);
    const policy = request.policy == null ? null : Policy.parse(request.policy);
    let redacted = 0;
    const out = items.map((item, i) => {
      if (policy === null) return { mapped: undefined, outcome: { tag: "kept" } };
      const [kept, n] = policy.apply(parse(request.items[i]), "id");
      redacted += n;
      if (kept === null) return { mapped: undefined, outcome: { tag: "withheld" } };
      const text = stringify(kept);
      return {
        mapped: undefined,
        outcome: text === request.items[i] ? { tag: "kept" } : { tag: "changed", val: text },
      };
    });
    return { items: out, redactedFields: BigInt(redacted) };
  },
};
