// The npm package as its users get it: `npm pack`, the tarball installed
// into a scratch project (offline, with an empty cache: the package has no
// dependencies, so nothing may come from the registry), then used the ways
// users use it: require, import, a <script> global, and `tsc --noEmit`
// against its types under bundler and Node resolution. TypeScript is this
// package's own dev dependency (web/node_modules), not the scratch's.
"use strict";

const { describe, it, before, after } = require("node:test");
const assert = require("node:assert/strict");
const { spawnSync } = require("node:child_process");
const fs = require("node:fs");
const os = require("node:os");
const path = require("node:path");
const vm = require("node:vm");
const { STRICT, WEB, ROOT } = require("./support/env.js");

const TSC = path.join(WEB, "node_modules", "typescript", "bin", "tsc");

// What ships: the client, its ES module entry, its types, and what npm
// always adds. Tests, the demo and the Go embedding stay out.
const SHIPPED = ["LICENSE", "README.md", "cometbox.d.ts", "cometbox.js", "cometbox.mjs", "package.json"];

function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { encoding: "utf8", timeout: 120000, ...opts });
  if (r.status !== 0) {
    throw new Error(`${cmd} ${args.join(" ")} (in ${opts.cwd || process.cwd()}): ${r.error || "exit " + r.status}\n${r.stdout}\n${r.stderr}`);
  }
  return r.stdout;
}

// node runs a script in the scratch project, as a file of the given
// extension (.cjs or .mjs), and returns what it printed as JSON.
function node(dir, ext, src) {
  const file = path.join(dir, "probe" + ext);
  fs.writeFileSync(file, src);
  return JSON.parse(run(process.execPath, [file], { cwd: dir }));
}

function write(dir, files) {
  fs.mkdirSync(dir, { recursive: true });
  for (const [name, text] of Object.entries(files)) fs.writeFileSync(path.join(dir, name), text);
}

describe("the npm package", () => {
  let tmp, scratch, tarball, pkg;

  before(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), "cometbox-pack-"));
    const packed = path.join(tmp, "packed");
    fs.mkdirSync(packed);
    // prepack copies the repository's LICENSE in, postpack removes it.
    run("npm", ["pack", "--pack-destination", packed, "--loglevel=error", "--no-update-notifier"], { cwd: WEB });
    const tgz = fs.readdirSync(packed).filter((f) => f.endsWith(".tgz"));
    assert.equal(tgz.length, 1, `npm pack wrote ${tgz}`);
    tarball = path.join(packed, tgz[0]);

    scratch = path.join(tmp, "app");
    write(scratch, { "package.json": JSON.stringify({ name: "scratch", private: true }) });
    run("npm", ["install", tarball, "--offline", "--cache", path.join(tmp, "cache"), "--no-audit", "--no-fund",
      "--no-update-notifier", "--ignore-scripts", "--loglevel=error"], { cwd: scratch });
    pkg = JSON.parse(fs.readFileSync(path.join(scratch, "node_modules", "cometbox", "package.json"), "utf8"));
  });

  after(() => {
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
    fs.rmSync(path.join(WEB, "LICENSE"), { force: true }); // in case postpack never ran
  });

  it("ships the client, its types, README and LICENSE, and nothing else", () => {
    const list = run("tar", ["tzf", tarball]).trim().split("\n").map((f) => f.replace(/^package\//, "")).sort();
    assert.deepEqual(list, SHIPPED);
    const installed = path.join(scratch, "node_modules", "cometbox");
    assert.equal(fs.readFileSync(path.join(installed, "LICENSE"), "utf8"), fs.readFileSync(path.join(ROOT, "LICENSE"), "utf8"));
    assert.equal(fs.existsSync(path.join(WEB, "LICENSE")), false, "postpack left web/LICENSE behind");
  });

  it("carries the repository's version and license", () => {
    assert.equal(pkg.name, "cometbox");
    assert.equal(pkg.version, fs.readFileSync(path.join(ROOT, "VERSION"), "utf8").trim());
    assert.equal(pkg.license, "MIT");
    assert.equal(pkg.private, undefined);
    assert.deepEqual(pkg.dependencies, undefined, "the client has no runtime dependencies");
  });

  it("require gives the UMD file's Cometbox, and sets no global", () => {
    const got = node(scratch, ".cjs", `
      const C = require("cometbox");
      console.log(JSON.stringify({
        resolved: require.resolve("cometbox"),
        type: typeof C,
        named: C.Cometbox === C,
        dflt: C.default === C,
        error: typeof C.CometboxError,
        subpath: require("cometbox/cometbox.js") === C,
        state: new C({ client: "alice" }).state,
        global: typeof globalThis.Cometbox,
        version: require("cometbox/package.json").version,
      }));
    `);
    assert.deepEqual(got, {
      resolved: path.join(scratch, "node_modules", "cometbox", "cometbox.js"),
      type: "function", named: true, dflt: true, error: "function", subpath: true,
      state: "disconnected", global: "undefined", version: pkg.version,
    });
  });

  it("import gives cometbox.mjs's exports, the same class as require, and sets no global", () => {
    const got = node(scratch, ".mjs", `
      import Default, { Cometbox, CometboxError } from "cometbox";
      import { createRequire } from "node:module";
      import { fileURLToPath } from "node:url";
      const require = createRequire(import.meta.url);
      console.log(JSON.stringify({
        resolved: fileURLToPath(import.meta.resolve("cometbox")),
        type: typeof Cometbox,
        dflt: Default === Cometbox,
        error: CometboxError === Cometbox.CometboxError,
        sameAsRequire: require("cometbox") === Cometbox,
        global: typeof globalThis.Cometbox,
      }));
    `);
    assert.deepEqual(got, {
      resolved: path.join(scratch, "node_modules", "cometbox", "cometbox.mjs"),
      type: "function", dflt: true, error: true, sameAsRequire: true, global: "undefined",
    });
  });

  it("keeps its files private beyond the exports map", () => {
    const got = node(scratch, ".cjs", `
      let code = "";
      try { require.resolve("cometbox/test/unit.test.js"); } catch (e) { code = e.code; }
      console.log(JSON.stringify({ code }));
    `);
    assert.deepEqual(got, { code: "ERR_PACKAGE_PATH_NOT_EXPORTED" });
  });

  it("cometbox.js as a <script> sets the global Cometbox", () => {
    // A classic script: no module, no define, the global object as `this`.
    const src = fs.readFileSync(path.join(scratch, "node_modules", "cometbox", "cometbox.js"), "utf8");
    const page = vm.createContext({});
    vm.runInContext(src, page, { filename: "cometbox.js" });
    assert.equal(typeof page.Cometbox, "function");
    assert.equal(page.Cometbox.Cometbox, page.Cometbox);
  });

  describe("tsc --noEmit against the types", { skip: skipWithoutTypescript() }, () => {
    // bundler: how Vite, webpack and esbuild projects resolve it; both the
    // default and the named import, and a type error the types must catch.
    it("with moduleResolution bundler", () => {
      tsc(path.join(scratch, "bundler"), {
        "app.ts": `
          import Cometbox, { Cometbox as Named, type CometboxMessage, type CometboxError } from "cometbox";
          const cb = new Cometbox<{ n: number }>({
            url: ["https://push1.example.com", "https://push2.example.com"],
            client: "alice",
            token: () => Promise.resolve("exp.sig"),
            onMessage(m: CometboxMessage<{ n: number }>) { m.data.n.toFixed(); },
          });
          cb.on("error", (e: CometboxError) => e.code.toUpperCase());
          cb.start().stop();
          export const same: typeof Cometbox = Named;
          export const version: string = Cometbox.VERSION;
          // @ts-expect-error: not a transport
          new Cometbox({ client: "bob", transport: "websocket" });
        `,
        "tsconfig.json": tsconfig({ module: "esnext", moduleResolution: "bundler" }, ["app.ts"]),
      });
    });

    // nodenext: an ES module and a CommonJS file in a Node project.
    it("with moduleResolution nodenext", () => {
      tsc(path.join(scratch, "nodenext"), {
        "esm.mts": `
          import { Cometbox, type CometboxState } from "cometbox";
          const s: CometboxState = new Cometbox({ client: "alice" }).start().state;
          export { s };
        `,
        "cjs.cts": `
          import cometbox = require("cometbox");
          const { Cometbox } = cometbox;
          new Cometbox({ client: "alice" }).start();
          new cometbox.default({ client: "bob" }).stop();
        `,
        "tsconfig.json": tsconfig({ module: "nodenext", moduleResolution: "nodenext" }, ["esm.mts", "cjs.cts"]),
      });
    });

    // A page that loads cometbox.js with a <script> tag and declares the
    // package's types: the global Cometbox.
    it("as the global of a script", () => {
      tsc(path.join(scratch, "script"), {
        "page.ts": `
          const cb = new Cometbox({ client: "alice", onStateChange(state) { document.title = state; } });
          cb.start();
        `,
        "tsconfig.json": tsconfig({ types: ["cometbox"] }, ["page.ts"]),
      });
    });
  });
});

function tsconfig(options, files) {
  return JSON.stringify({
    compilerOptions: { strict: true, noEmit: true, target: "es2022", lib: ["es2022", "dom"], types: [], ...options },
    files,
  });
}

function tsc(dir, files) {
  write(dir, files);
  run(process.execPath, [TSC, "--noEmit", "-p", path.join(dir, "tsconfig.json")], { cwd: dir });
}

function skipWithoutTypescript() {
  if (fs.existsSync(TSC)) return false;
  const why = "typescript is not installed in web/node_modules (npm ci)";
  if (STRICT) throw new Error(`COMETBOX_TEST_STRICT=1 and ${why}`);
  console.log(`SKIP: ${why} (set COMETBOX_TEST_STRICT=1 to fail instead)`);
  return why;
}
