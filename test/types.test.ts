// The option and result types, checked by the compiler: test/types/options.ts
// must compile under --strict, every @ts-expect-error in it included (each
// marks a misspelt option beside valid ones, or a delta not asked for).
import { spawnSync } from "child_process";
import * as path from "path";

test("a misspelt option is a compile error for every algorithm; results follow returnConvergenceDelta", () => {
  const tsc = require.resolve("typescript/bin/tsc");
  const file = path.join(__dirname, "types", "options.ts");
  const args = ["--strict", "--noEmit", "--target", "es2022", "--module", "commonjs", "--moduleResolution", "node", "--types", "node", file];
  const r = spawnSync(process.execPath, [tsc, ...args], { encoding: "utf8" });
  expect(r.stdout + r.stderr).toBe("");
  expect(r.status).toBe(0);
}, 60000);
