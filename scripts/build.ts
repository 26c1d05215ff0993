// npm run build: the C stage, then dist/bunker (one executable with the stage
// inside), then dist/rootfs, a small root filesystem made from this host.
import { mkdirSync } from "node:fs";
import { makeRootfs } from "./rootfs.ts";

const pkg = await Bun.file(new URL("../package.json", import.meta.url)).json();
const root = new URL("..", import.meta.url).pathname;
/** JavaScriptCore's tier-up thresholds, scaled (see Bun.unsafe.setJITPolicy). */
const JIT_POLICY = 50;

function sh(cmd: string[]): void {
  const p = Bun.spawnSync(cmd, { cwd: root, stdio: ["inherit", "inherit", "inherit"] });
  if (p.exitCode !== 0) {
    console.error(`build: ${cmd.join(" ")} failed (exit ${p.exitCode})`);
    process.exit(1);
  }
}

mkdirSync(`${root}/build`, { recursive: true });
mkdirSync(`${root}/dist`, { recursive: true });

// The stage is freestanding (ffi/nolibc.h): static, no libc, about 20 KB,
// so it runs on any x86-64 Linux and costs little to copy and exec.
const cc = process.env.CC ?? "cc";
sh([
  cc, "-Os", "-static", "-nostdlib", "-fno-pie", "-no-pie", "-ffreestanding", "-fno-builtin",
  "-fno-stack-protector", "-fno-asynchronous-unwind-tables", "-Wall", "-Wextra", "-Werror", "-s",
  "-o", "build/bunker-stage", "ffi/stage.c",
]);

sh([
  process.execPath,
  "build",
  "--compile",
  "--minify",
  "--bytecode",
  // the executable reads no .env or bunfig.toml from the directory it runs in:
  // either would let that directory set bunker's environment or preload code
  "--no-compile-autoload-dotenv",
  "--no-compile-autoload-bunfig",
  // start-up code runs once: compiling it costs more than interpreting it
  // (~5 ms of a `run`); import and export keep it too: on 2 cores the JIT's
  // threads compete with the work, and import measured ~7% faster with it
  `--compile-jit-policy=${JIT_POLICY}`,
  `--define=BUNKER_VERSION=${JSON.stringify(pkg.version)}`,
  "--outfile=dist/bunker",
  "src/main.ts",
  // a Worker's code is an entry point of its own (src/bundle/frames.ts names its path inside the executable)
  "src/bundle/zstd-worker.ts",
]);

if (!process.argv.includes("--no-rootfs")) {
  const how = makeRootfs(`${root}/dist/rootfs`);
  console.log(`build: dist/rootfs from ${how}`);
}
