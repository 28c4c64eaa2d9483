// The package as a user gets it: `npm pack` from a copy of the repository's
// files (as a clean clone has them), `npm install` of the tarball into a new
// project with none of this machine's npm settings (no nodedir: the addon is
// built offline with node-api-headers), then require(), an attribution, the
// README's install lines, and strict type checks, one of which must fail.
// Slow: the install builds the addon (1.5 to 2.5 minutes on 2 cores).
// TORCHEXPLAIN_SKIP_PACKAGE_TEST=1 skips it.
import { spawnSync, SpawnSyncOptions } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { runStories } from "./stories";

const root = path.join(__dirname, "..");
const skip = !!process.env.TORCHEXPLAIN_SKIP_PACKAGE_TEST;

function run(cmd: string, args: string[], opts: SpawnSyncOptions & { cwd: string }) {
  const r = spawnSync(cmd, args, { encoding: "utf8", maxBuffer: 64 << 20, ...opts });
  return { status: r.status, stdout: String(r.stdout ?? ""), output: `${r.stdout ?? ""}${r.stderr ?? ""}` };
}

// The run's result when it succeeded; its output in the failure otherwise.
function must(r: ReturnType<typeof run>, what: string) {
  if (r.status !== 0) throw new Error(`${what} failed (${r.status}):\n${r.output.slice(-6000)}`);
  return r;
}

(skip ? test.skip : test)(
  "npm pack, npm install in a new project (the addon built there), require, attribute, type-check",
  () => {
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "torchexplain-package-"));
    // npm with no settings from this machine: empty user and global configs,
    // and none of the npm_* variables of an `npm test` that runs this.
    const [userrc, globalrc] = [path.join(tmp, "user.npmrc"), path.join(tmp, "global.npmrc")];
    fs.writeFileSync(userrc, "");
    fs.writeFileSync(globalrc, "");
    const env: NodeJS.ProcessEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^npm_|^INIT_CWD$/i.test(k)));
    Object.assign(env, { npm_config_userconfig: userrc, npm_config_globalconfig: globalrc, npm_config_update_notifier: "false" });
    const npm = (args: string[], cwd: string) => run("npm", [...args, "--no-audit", "--no-fund"], { cwd, env });

    // 1. The tarball, from the files a clone has (dist/ is built by prepack).
    const src = path.join(tmp, "src");
    const files = run("git", ["ls-files", "--cached", "--others", "--exclude-standard", "-z"], { cwd: root }).stdout.split("\0").filter(Boolean);
    for (const f of files) if (fs.existsSync(path.join(root, f))) fs.cpSync(path.join(root, f), path.join(src, f));
    expect(fs.existsSync(path.join(src, "dist"))).toBe(false);
    fs.symlinkSync(path.join(root, "node_modules"), path.join(src, "node_modules")); // prepack's tsc
    const pack = must(npm(["pack", "--json", "--pack-destination", tmp], src), "npm pack");
    const packed = JSON.parse(pack.stdout.slice(pack.stdout.indexOf("[")))[0] as { filename: string; files: { path: string }[] };
    const shipped = packed.files.map((f) => f.path);
    for (const f of ["dist/index.js", "dist/index.d.ts", "binding.gyp", "CMakeLists.txt", "native/sources.json", "scripts/install.js", "models/digits_cnn.pt", "LICENSE", "README.md"])
      expect(shipped).toContain(f);
    // Not tests, benchmarks (or their models), reference scripts or a build.
    expect(shipped.filter((f) => /^(test|bench|native\/tests|build)\/|^models\/(bench|linear)|make_\w+\.py$|scripts\/(bench|bootstrap)\.js$/.test(f))).toEqual([]);

    // 2. A new project installs it: the install step builds the addon there.
    const app = path.join(tmp, "app");
    fs.mkdirSync(app);
    fs.writeFileSync(path.join(app, "package.json"), JSON.stringify({ name: "app", version: "1.0.0", private: true }));
    const started = Date.now();
    const install = must(npm(["install", "--foreground-scripts", path.join(tmp, packed.filename)], app), "npm install");
    const seconds = (Date.now() - started) / 1000;
    expect(install.output).toMatch(/\[torchexplain\] built build\/Release\/torchexplain\.node in \d+ s/);
    // No dependency that refuses this Node (cookie 2 wants Node 22: light-my-request is pinned to 6.6.0, on cookie 1).
    expect(install.output).not.toMatch(/EBADENGINE/);
    console.log(`npm install of the tarball (addon built) took ${seconds.toFixed(0)} s`);
    // Only the addon is left of the build: no objects, no precompiled headers.
    const pkg = path.join(app, "node_modules", "torchexplain");
    const left = (fs.readdirSync(pkg, { recursive: true }) as string[]).filter((f) => /\.(o|a|gch|pch)$|CMakeFiles|CMakeCache/.test(f));
    expect(left).toEqual([]);
    expect(fs.readdirSync(path.join(pkg, "build"), { recursive: true })).toEqual(["Release", path.join("Release", "torchexplain.node")]);

    // 3. require() and an attribution: the demo's CNN, IG complete up to a small delta.
    const script = `
      const { loadModel, tensor, IntegratedGradients, buildInfo } = require("torchexplain");
      (async () => {
        const model = await loadModel(require.resolve("torchexplain/models/digits_cnn.pt"));
        const x = tensor(Float32Array.from({ length: 128 }, (_, i) => Math.abs(Math.sin(i))), [2, 1, 8, 8]);
        const { attributions, delta } = await new IntegratedGradients(model).attribute(x, { target: 3, nSteps: 100, returnConvergenceDelta: true });
        console.log(JSON.stringify({ libtorch: buildInfo().libtorch, shape: attributions.shape, delta: Array.from(delta.data()) }));
      })();`;
    const used = must(run(process.execPath, ["-e", script], { cwd: app, env }), "the attribution");
    const result = JSON.parse(used.stdout);
    expect(result.shape).toEqual([2, 1, 8, 8]);
    for (const d of result.delta) expect(Math.abs(d)).toBeLessThan(0.05);

    // 4. The README's install lines, as pasted into the project.
    const readme = fs.readFileSync(path.join(root, "README.md"), "utf8").split("## Install")[1].split("\n## ")[0];
    expect(readme).toMatch(/```sh\nnpm install \.\/torchexplain-[\d.]+\.tgz/);
    fs.writeFileSync(path.join(app, "readme.js"), readme.split("```js\n")[1].split("```")[0]);
    const pasted = must(run(process.execPath, ["readme.js"], { cwd: app, env }), "the README's lines");
    expect(pasted.output.trim()).toBe("[ 1, 1, 8, 8 ]");

    // 4b. The torchexplain command as npm links it, and a picture (sharp, from the registry) in the new project.
    const info = must(run("npx", ["--no-install", "torchexplain", "info", "node_modules/torchexplain/models/digits_cnn.pt"], { cwd: app, env }), "npx torchexplain info");
    expect(info.stdout).toMatch(/^output: \[1,10\] float32$/m);
    const picture = `
      const { visualizeImageAttr, tensor } = require("torchexplain");
      visualizeImageAttr(tensor(Float32Array.from({ length: 64 }, (_, i) => i - 32), [1, 8, 8]), null, { sign: "all", title: "t" })
        .then((png) => require("sharp")(png).metadata()).then((m) => console.log(m.format, m.height > 8));`;
    expect(must(run(process.execPath, ["-e", picture], { cwd: app, env }), "a picture").stdout.trim()).toBe("png true");

    // 4c. The README's four stories, as a new user runs them.
    runStories(app, env);

    // 5. Strict TypeScript against the installed declarations; a misspelt option beside valid ones fails.
    fs.writeFileSync(
      path.join(app, "good.ts"),
      `import { loadModel, tensor, IntegratedGradients, NoiseTunnel, Saliency, Tensor, TorchExplainError, WithDelta } from "torchexplain";
      export async function main(flag: boolean): Promise<string> {
        const model = await loadModel("model.pt");
        const x = tensor([[1, 2, 3, 4, 5, 6]]);
        const ig = new IntegratedGradients(model, { multiplyByInputs: true });
        const plain: Tensor = await ig.attribute(x, { target: 0, nSteps: 5, onProgress: (done, total) => done / total });
        const withDelta: WithDelta<Tensor> = await ig.attribute(x, { target: 0, returnConvergenceDelta: true });
        const either = await ig.attribute(x, { target: 0, returnConvergenceDelta: flag });
        const t: Tensor = either instanceof Tensor ? either : either.attributions;
        const smooth: Tensor[] = await new NoiseTunnel(new Saliency(model)).attribute([x], { target: 0, nSamples: 3 });
        try {
          await ig.attribute(x, { target: 9 });
        } catch (e) {
          if (e instanceof TorchExplainError && e.code === "ERR_BAD_TARGET") return e.argument ?? "";
        }
        return [plain, withDelta.delta, t, ...smooth].map((a) => a.shape.join("x")).join();
      }
      `,
    );
    fs.writeFileSync(
      path.join(app, "bad.ts"),
      `import { loadModel, tensor, IntegratedGradients } from "torchexplain";
      export async function main(): Promise<void> {
        await new IntegratedGradients(await loadModel("model.pt")).attribute(tensor([[1]]), { target: 0, nStep: 5 });
      }
      `,
    );
    const tsc = (file: string, module: string) =>
      run(process.execPath, [
        require.resolve("typescript/bin/tsc"), "--strict", "--noEmit", "--target", "es2022", "--module", module,
        "--typeRoots", path.join(root, "node_modules", "@types"), "--types", "node", file,
      ], { cwd: app, env });
    for (const module of ["nodenext", "commonjs"]) {
      const good = tsc("good.ts", module);
      expect([module, good.status, good.output]).toEqual([module, 0, ""]);
    }
    const bad = tsc("bad.ts", "nodenext");
    expect(bad.status).not.toBe(0);
    expect(bad.output).toMatch(/bad\.ts\(3,\d+\): error TS2322: .*nStep is not an option of this algorithm/);

    fs.rmSync(tmp, { recursive: true, force: true });
  },
  15 * 60 * 1000,
);
