// The C++ core's own tests (native/tests), built by the bootstrap with the addon.
import { spawnSync } from "child_process";
import * as path from "path";
import { GOLDEN } from "./helpers";
// eslint-disable-next-line @typescript-eslint/no-var-requires
const { coreTestBinary } = require("../scripts/bootstrap.js");

test("C++ core tests pass", () => {
  const bin = coreTestBinary();
  expect(bin).not.toBeNull();
  const r = spawnSync(bin, [path.resolve(GOLDEN)], { encoding: "utf8" });
  expect(r.stderr).toBe("");
  expect(r.stdout).toMatch(/core_tests: \d+ passed, 0 failed/);
  expect(r.status).toBe(0);
});
