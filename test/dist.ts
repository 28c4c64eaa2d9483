// For tests that run the compiled package (the command line, workers): makes
// sure dist/ is there and newer than every lib/ source, compiling it if not
// (npm test's bootstrap normally has).
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";

const root = path.join(__dirname, "..");

function newest(dir: string): number {
  let t = 0;
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    t = Math.max(t, e.isDirectory() ? newest(p) : fs.statSync(p).mtimeMs);
  }
  return t;
}

export function ensureDist(): void {
  const main = path.join(root, "dist", "cli", "main.js");
  if (fs.existsSync(main) && fs.statSync(main).mtimeMs >= newest(path.join(root, "lib")) && newest(path.join(root, "dist")) >= newest(path.join(root, "lib"))) return;
  const r = spawnSync(process.execPath, [require.resolve("typescript/bin/tsc"), "-p", path.join(root, "tsconfig.json")], { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`tsc failed:\n${r.stdout}${r.stderr}`);
}
