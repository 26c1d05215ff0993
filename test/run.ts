// npm test: build dist/bunker, run every test with `bun test`, and end with
// one line "N passed, N failed". Arguments are passed on to `bun test`
// (a file filter, -t NAME, ...). --no-build skips the build.
const root = new URL("..", import.meta.url).pathname;
const args = process.argv.slice(2);
const build = !args.includes("--no-build");
const passOn = args.filter((a) => a !== "--no-build");

if (build) {
  const b = Bun.spawnSync([process.execPath, "scripts/build.ts"], { cwd: root, stdio: ["inherit", "inherit", "inherit"] });
  if (b.exitCode !== 0) {
    console.log("build failed\n0 passed, 1 failed");
    process.exit(1);
  }
}

// integration tests start real containers: give each a minute (this Bun does not
// read a timeout from bunfig.toml, and its own default of 5 s made slow runs fail)
const timeout = passOn.some((a) => a.startsWith("--timeout")) ? [] : ["--timeout=60000"];
const proc = Bun.spawn([process.execPath, "test", ...timeout, ...passOn], {
  cwd: root,
  stdio: ["inherit", "pipe", "pipe"],
  env: { ...process.env, FORCE_COLOR: "0" },
});

let passed = 0;
let failed = 0;
let summary = false;
async function tee(stream: ReadableStream<Uint8Array>, out: { write(chunk: Uint8Array): unknown }): Promise<void> {
  const dec = new TextDecoder();
  let rest = "";
  for await (const chunk of stream) {
    out.write(chunk);
    rest += dec.decode(chunk, { stream: true });
    const lines = rest.split("\n");
    rest = lines.pop()!;
    for (const l of lines) {
      const m = /^\s*(\d+) (pass|fail)$/.exec(l);
      if (m) m[2] === "pass" ? (passed = Number(m[1])) : ((failed = Number(m[1])), (summary = true));
    }
  }
}
await Promise.all([tee(proc.stdout, process.stdout), tee(proc.stderr, process.stderr)]);
const code = await proc.exited;
// bun test itself failed (load error, crash), or stopped before its summary
if ((code !== 0 || !summary) && failed === 0) failed = 1;
console.log(`${passed} passed, ${failed} failed`);
process.exit(code === 0 && failed === 0 ? 0 : 1);
