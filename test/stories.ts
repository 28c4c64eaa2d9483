// The README's four stories (endpoint, nightly batch job, per-token HTML,
// metrics and TCAV), run in a project where torchexplain is installed, each
// checked for what the README says it prints and writes. Run by the README
// test (this repository, linked) and the package test (the packed tarball).
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";

export function readmeStories(): { kind: string; code: string }[] {
  const readme = fs.readFileSync(path.join(__dirname, "..", "README.md"), "utf8");
  const section = readme.split("## Four stories, end to end")[1].split("\n## ")[0];
  return [...section.matchAll(/```(js|sh)\n([\s\S]*?)```/g)].map((m) => ({ kind: m[1], code: m[2] }));
}

/** Runs each story in `dir` (a project with torchexplain in node_modules) and checks its output. */
export function runStories(dir: string, env: NodeJS.ProcessEnv = process.env): void {
  const stories = readmeStories();
  expect(stories.map((s) => s.kind)).toEqual(["js", "sh", "js", "js"]);
  const run = (i: number) => {
    const { kind, code } = stories[i];
    const file = path.join(dir, `story${i + 1}.${kind}`);
    fs.writeFileSync(file, code);
    const r = spawnSync(kind === "js" ? process.execPath : "bash", ["-e", file].slice(kind === "js" ? 1 : 0), { cwd: dir, env, encoding: "utf8", timeout: 240000 });
    if (r.status !== 0) throw new Error(`story ${i + 1} exited ${r.status}:\n${r.stdout}\n${r.stderr}`);
    return Object.assign(r.stdout.trim().split("\n"), { stderr: r.stderr });
  };
  // 1. The endpoint answers a digit with its heat map and the predicted class, a bad body with 400.
  const [reply, bad] = run(0);
  const m = /^200 (\d) label (\d)$/.exec(reply);
  expect(m && m[1] === m[2]).toBe(true);
  expect(bad).toBe("400");
  expect(fs.readFileSync(path.join(dir, "heatmap.png")).subarray(1, 4).toString()).toBe("PNG");
  // 2. The nightly job: attributions, an index and a picture per example, and a resume that redoes nothing.
  const nightly = run(1);
  expect(nightly.stderr).toContain("resuming: 1 of 1 shards already done");
  for (const out of ["nightly-npy", "nightly-png"]) {
    expect(JSON.parse(fs.readFileSync(path.join(dir, out, "index.json"), "utf8")).examples).toHaveLength(6);
    expect(fs.readdirSync(path.join(dir, out, "heatmaps"))).toHaveLength(6);
  }
  // 3. Per-token HTML: the words that pull hardest each way.
  expect([...run(2)]).toEqual(["for positive: tasty against: rude"]);
  expect(fs.readFileSync(path.join(dir, "review.html"), "utf8")).toContain("tasty");
  // 4. Metrics and TCAV.
  expect([...run(3)]).toEqual(["infidelity [ 6 ] sensitivity [ 6 ]", "sign count [ 2 ]", "significance [ 'conv2' ]"]);
}
