// `bunker run -it` on a real terminal: tmux gives us one, and lets the test
// type, resize the window and read the screen.
import { afterAll, expect, test } from "bun:test";
import { chmodSync, mkdtempSync } from "node:fs";
import { join } from "node:path";
import { asUser, bunker, setup } from "./harness.ts";
import { freshStore, rootfsDir, tarOf, workdir } from "./store.ts";

const h = setup();
// the test user must be able to create the socket
const socketDir = mkdtempSync(join(h.dir, "tmux-"));
chmodSync(socketDir, 0o777);
const socket = join(socketDir, "sock");
const hasTmux = Bun.spawnSync(["sh", "-c", "command -v tmux"]).exitCode === 0;

function tmux(...args: string[]): string {
  const p = Bun.spawnSync(asUser(["tmux", "-S", socket, ...args]), { stdout: "pipe", stderr: "pipe" });
  if (p.exitCode !== 0) throw new Error(`tmux ${args.join(" ")}: ${p.stderr.toString()}`);
  return p.stdout.toString();
}

const screen = () => tmux("capture-pane", "-p", "-t", "t");

async function waitFor(pattern: RegExp, what: string): Promise<string> {
  for (let i = 0; i < 60; i++) {
    const s = screen();
    if (pattern.test(s)) return s;
    await Bun.sleep(50);
  }
  throw new Error(`timed out waiting for ${what}; the screen was:\n${screen()}`);
}

async function type(line: string, until: RegExp): Promise<string> {
  tmux("send-keys", "-t", "t", "-l", line);
  tmux("send-keys", "-t", "t", "Enter");
  return waitFor(until, line);
}

afterAll(() => {
  if (hasTmux) Bun.spawnSync(asUser(["tmux", "-S", socket, "kill-server"]));
});

test.skipIf(!hasTmux)("-it gives a terminal in raw mode that follows window size changes", { timeout: 30000 }, async () => {
  // an outer shell, so we can see the status and the terminal state afterwards
  tmux("new-session", "-d", "-s", "t", "-x", "80", "-y", "24", "env", "PS1=outer$ ", "/bin/sh");
  await waitFor(/outer\$\s*$/m, "the outer prompt");
  await type(`${h.bin} run -it -e PS1='inner# ' ${h.main.rootfs} /bin/sh`, /inner#\s*$/m);

  let s = await type("tty; stty size; echo $TERM; echo end-1", /^end-1$/m);
  expect(s).toMatch(/^\/dev\/pts\/0$/m);
  expect(s).toMatch(/^24 80$/m);
  expect(s).toMatch(/^xterm$/m);

  tmux("resize-window", "-t", "t", "-x", "100", "-y", "30");
  await Bun.sleep(100);
  s = await type("stty size; echo end-2", /^end-2$/m);
  expect(s).toMatch(/^30 100$/m);

  // ^C reaches the container's foreground process through its own terminal
  tmux("send-keys", "-t", "t", "-l", "sleep 30; echo not-interrupted");
  tmux("send-keys", "-t", "t", "Enter");
  await Bun.sleep(300);
  tmux("send-keys", "-t", "t", "C-c");
  s = await type("echo end-3", /^end-3$/m);
  expect(s).not.toMatch(/^not-interrupted$/m);

  await type("exit 3", /outer\$\s*$/m);
  s = await type("echo status=$?; stty -a | grep -o -- '-\\?icanon'", /^status=/m);
  await Bun.sleep(100);
  s = screen();
  expect(s).toMatch(/^status=3$/m);
  // the caller's terminal is back in canonical mode
  expect(s).toMatch(/^icanon$/m);
});

test.skipIf(!hasTmux)("exec -it gives a detached container's shell a terminal of its own", { timeout: 30000 }, async () => {
  const run = bunker(["run", "-d", h.main.rootfs, "sleep", "100"]);
  expect(run.code).toBe(0);
  const id = run.stdout.trim();
  try {
    tmux("new-session", "-d", "-s", "e", "-x", "90", "-y", "20", "env", "PS1=outer$ ", "/bin/sh");
    const send = (line: string) => (tmux("send-keys", "-t", "e", "-l", line), tmux("send-keys", "-t", "e", "Enter"));
    const seen = async (pattern: RegExp) => {
      for (let i = 0; i < 100; i++) {
        const s = tmux("capture-pane", "-p", "-t", "e");
        if (pattern.test(s)) return s;
        await Bun.sleep(50);
      }
      throw new Error(`timed out waiting for ${pattern}; the screen was:\n${tmux("capture-pane", "-p", "-t", "e")}`);
    };
    await seen(/outer\$\s*$/m);
    send(`${h.bin} exec -it -e PS1='ex# ' ${id} /bin/sh`);
    await seen(/ex#\s*$/m);
    send("tty; stty size; echo $TERM; echo end-e");
    let s = await seen(/^end-e$/m);
    expect(s).toMatch(/^\/dev\/pts\/\d+$/m);
    expect(s).toMatch(/^20 90$/m);
    expect(s).toMatch(/^xterm$/m);
    send("exit 5");
    await seen(/outer\$\s*$/m);
    send("echo status=$?");
    s = await seen(/^status=/m);
    expect(s).toMatch(/^status=5$/m);
  } finally {
    bunker(["rm", "-f", id]);
  }
});

test.skipIf(!hasTmux)("export and import draw a progress bar on a terminal, and end its line", { timeout: 30000 }, async () => {
  const a = freshStore();
  const b = freshStore();
  const w = workdir();
  const tar = tarOf(rootfsDir(w), join(w, "base.tar"));
  const out = join(w, "out");
  chmodSync(w, 0o777);
  tmux("new-session", "-d", "-s", "p", "-x", "120", "-y", "24", "env", "PS1=outer$ ", "/bin/sh");
  const send = (line: string) => (tmux("send-keys", "-t", "p", "-l", line), tmux("send-keys", "-t", "p", "Enter"));
  const seen = async (pattern: RegExp, what: string) => {
    for (let i = 0; i < 100; i++) {
      const s = tmux("capture-pane", "-p", "-t", "p");
      if (pattern.test(s)) return s;
      await Bun.sleep(50);
    }
    throw new Error(`timed out waiting for ${what}; the screen was:\n${tmux("capture-pane", "-p", "-t", "p")}`);
  };
  send(`XDG_DATA_HOME=${a.dir} ${h.bin} import ${tar} --name base >/dev/null; echo done-1`);
  await seen(/^done-1$/m, "the first import");
  send(`XDG_DATA_HOME=${a.dir} ${h.bin} export base -o ${out}.bundle; echo done-2`);
  let s = await seen(/^done-2$/m, "the export");
  expect(s).toMatch(/^export \[#+\] [\d.]+ MB\/[\d.]+ MB [\d.]+ MB\/s ETA (-|\d+s)$/m);
  send(`XDG_DATA_HOME=${b.dir} ${h.bin} import ${out}.bundle; echo done-3`);
  s = await seen(/^done-3$/m, "the import of the bundle");
  // the bar, then the result on a line of its own
  expect(s).toMatch(/^import \[#+\] [\d.]+ MB\/[\d.]+ MB [\d.]+ MB\/s ETA (-|\d+s)\nbase:latest sha256:[0-9a-f]{64}$/m);
  // a container's changes are not known before they are read: bytes and rate, no total that its changes would pass
  send(`XDG_DATA_HOME=${a.dir} ${h.bin} run --network none --name changed base /bin/sh -c 'head -c 3000000 /dev/zero > /big'; XDG_DATA_HOME=${a.dir} ${h.bin} export changed -o ${out}-c.bundle; echo done-4`);
  s = await seen(/^done-4$/m, "the export of a container");
  expect(s).toMatch(/^export [\d.]+ MB [\d.]+ MB\/s$/m);
});
