// The README's quick start, run as a user would run it, prints the reference numbers.
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { expectClose } from "./helpers";
import { runStories } from "./stories";

test("README quick start prints Captum's numbers for its README example", () => {
  const root = path.join(__dirname, "..");
  const readme = fs.readFileSync(path.join(root, "README.md"), "utf8");
  const code = readme.split("## Quick start")[1].split("```js")[1].split("```")[0];
  fs.mkdirSync(path.join(root, "build"), { recursive: true });
  const file = path.join(root, "build", "readme-quickstart.js");
  fs.writeFileSync(file, code);
  const r = spawnSync(process.execPath, [file], { cwd: root, encoding: "utf8" });
  expect(r.stderr).toBe("");
  const lines = r.stdout.trim().split("\n");
  expect(lines[0]).toBe("[ 2, 3 ]");
  // Printed to 4 decimals: another CPU's float32 noise may flip the last digit, so compare numbers.
  const printed = (JSON.parse(lines[1]) as number[][]).flat();
  const shown = (JSON.parse(code.match(/\/\/ (\[\[.*\]\])/)![1]) as number[][]).flat(); // the output the README shows
  expectClose(printed, [-0.5922, -1.5497, -1.0067, 0, -0.2219, -5.1991], { atol: 1.5e-4, rtol: 0 });
  expectClose(shown, printed, { atol: 1.5e-4, rtol: 0 });
});

/**
 * Runs the first js block after a README heading as example.js in a project
 * folder where require("torchexplain") is this package and test/fixtures is at hand.
 */
function runExample(heading: string) {
  const root = path.join(__dirname, "..");
  const readme = fs.readFileSync(path.join(root, "README.md"), "utf8");
  const code = readme.split(heading)[1].split("```js")[1].split("```")[0];
  const dir = fs.mkdtempSync(path.join(require("os").tmpdir(), "torchexplain-readme-"));
  fs.mkdirSync(path.join(dir, "node_modules"));
  fs.symlinkSync(root, path.join(dir, "node_modules", "torchexplain"));
  fs.symlinkSync(path.join(root, "test"), path.join(dir, "test"));
  fs.writeFileSync(path.join(dir, "example.js"), code);
  const r = spawnSync(process.execPath, ["example.js"], { cwd: dir, encoding: "utf8", timeout: 120000 });
  return { code, dir, r };
}

test("README language-model example runs as written and prints what it shows", () => {
  const { code, dir, r } = runExample("### Language models");
  expect(r.stderr).toBe("");
  const shown = JSON.parse(code.match(/\/\/ (\[ -0\.23.*?\])/)![1]) as number[];
  const printed = r.stdout.split("\n")[1];
  expectClose(JSON.parse(printed) as number[], shown, { atol: 2e-3, rtol: 0 });
  expect(r.stdout).toContain("[ 'dave', 'paris', 'the cat' ] [ 'he', 'is', 'happy' ]");
  expect(r.stdout).toContain("2 6");
  for (const f of ["token_attr.png", "seq_attr.png", "attr.html"]) expect(fs.statSync(path.join(dir, f)).size).toBeGreaterThan(500);
  fs.rmSync(dir, { recursive: true, force: true });
});

test("README influence example runs as written and prints what it shows", () => {
  const { code, dir, r } = runExample("### Training-data influence");
  expect(r.stderr).toBe("");
  const lines = r.stdout.trim().split("\n");
  // The lines the README shows after `//`.
  const shown = [...code.matchAll(/console\.log\(.*\);\s*\/\/ (.*)$/gm)].map((m) => m[1]);
  expect(shown.length).toBe(2);
  expect(lines.slice(0, 2)).toEqual(shown);
  expect(lines.length).toBe(3);
  expect(fs.statSync(path.join(dir, "influence.png")).size).toBeGreaterThan(5000);
  fs.rmSync(dir, { recursive: true, force: true });
});

test("README's four stories run as written (this repository as the installed package)", () => {
  const root = path.join(__dirname, "..");
  const dir = fs.mkdtempSync(path.join(require("os").tmpdir(), "torchexplain-stories-"));
  fs.mkdirSync(path.join(dir, "node_modules", ".bin"), { recursive: true });
  fs.symlinkSync(root, path.join(dir, "node_modules", "torchexplain"));
  fs.symlinkSync(path.join(root, "bin", "torchexplain.js"), path.join(dir, "node_modules", ".bin", "torchexplain"));
  try {
    runStories(dir);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}, 300000);

test("every js and ts block of the README parses", () => {
  const ts = require("typescript") as typeof import("typescript");
  const readme = fs.readFileSync(path.join(__dirname, "..", "README.md"), "utf8");
  const blocks = [...readme.matchAll(/```(ts|js)\n([\s\S]*?)```/g)];
  expect(blocks.length).toBeGreaterThan(8);
  const broken = blocks
    .map((m) => ts.createSourceFile(`block.${m[1]}`, m[2], ts.ScriptTarget.ES2022, true, m[1] === "ts" ? ts.ScriptKind.TS : ts.ScriptKind.JS))
    .map((f, i) => [i, (f as unknown as { parseDiagnostics: { messageText: string }[] }).parseDiagnostics.map((d) => d.messageText)] as const)
    .filter(([, d]) => d.length);
  expect(broken).toEqual([]);
});
