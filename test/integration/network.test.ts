// Rootless networking through pasta and slirp4netns. All traffic stays on this
// machine's loopback, or inside the namespaces the containers make: the host's
// servers listen on 127.0.0.1, published ports are reached on 127.0.0.1, and a
// container's connections go to the name host-gateway gives, which the helper
// maps to the host's loopback.
import { afterAll, describe, expect, test } from "bun:test";
import { chmodSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { asRoot, asUser, bunker, type RunOpts, setup } from "./harness.ts";
import { freshStore } from "./store.ts";

const h = setup();
const u = h.main;
const { env } = freshStore();
const b = (args: string[], opts: RunOpts = {}) => bunker(args, { ...opts, env: { ...env, ...opts.env } });
/** The same, without blocking this process: its own servers must answer meanwhile. */
async function ba(args: string[]): Promise<{ code: number; stdout: string }> {
  const p = Bun.spawn(asUser([h.bin, ...args], { env }), { stdout: "pipe", stderr: "ignore" });
  const [stdout, code] = await Promise.all([new Response(p.stdout).text(), p.exited]);
  return { code, stdout };
}
const has = (tool: string) => Bun.spawnSync(["sh", "-c", `command -v ${tool}`]).exitCode === 0;
const modes = ["pasta", "slirp4netns"].filter(has);

/** A port nothing listens on now (the kernel picks it). */
function freePort(): number {
  const s = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const port = s.port;
  s.stop(true);
  return port;
}

/** Processes of the test user running a network helper (zombies aside). */
function helpers(): string[] {
  const out = Bun.spawnSync(["ps", "-u", String(u.uid), "-o", "stat=,comm="]).stdout.toString();
  return out.split("\n").filter((l) => /passt|pasta|slirp4netns/.test(l) && !/^Z/.test(l.trim()));
}

async function noHelpers(): Promise<void> {
  for (let i = 0; i < 100 && helpers().length; i++) await Bun.sleep(50);
  expect(helpers()).toEqual([]);
}

// a host server on the loopback only
const hostPort = freePort();
const server = Bun.serve({ hostname: "127.0.0.1", port: hostPort, fetch: () => new Response("hello from the host\n") });
afterAll(() => server.stop(true));

// a directory the container serves with busybox httpd
const www = mkdtempSync(join(h.dir, "www-"));
writeFileSync(join(www, "index.html"), "hello from the container\n");
chmodSync(www, 0o755);
chmodSync(join(www, "index.html"), 0o644);

const get = (host: string, port: number) => `printf 'GET / HTTP/1.0\\r\\n\\r\\n' | timeout 5 nc ${host} ${port} | tail -n 1`;

test.skipIf(!has("pasta"))("pasta is the default: an interface and a default route besides lo", () => {
  const r = b(["run", u.rootfs, "sh", "-c", "cat /proc/net/route | awk 'NR>1 && $2==\"00000000\" {print \"default via \" $1}'; ls /sys/class/net | sort"]);
  expect(r.code).toBe(0);
  const lines = r.stdout.trim().split("\n");
  expect(lines[0]).toMatch(/^default via \S+$/);
  expect(lines.slice(1)).toContain("lo");
  expect(lines.slice(1).length).toBe(2);
});

describe.each(modes)("--network %s", (mode) => {
  test("reaches a server on the host's loopback through host-gateway, and only when asked", async () => {
    let r = await ba(["run", "--network", mode, "--add-host", "host.containers.internal:host-gateway", u.rootfs, "sh", "-c", get("host.containers.internal", hostPort)]);
    expect([r.code, r.stdout]).toEqual([0, "hello from the host\n"]);
    // without it, the gateway is not the host's loopback
    const gw = mode === "pasta" ? b(["run", "--network", mode, u.rootfs, "sh", "-c", "awk 'NR>1 && $2==\"00000000\" {print $3}' /proc/net/route"]).stdout.trim() : "";
    const addr = mode === "pasta" ? [0, 8, 16, 24].map((s) => (Number.parseInt(gw, 16) >>> s) & 255).join(".") : "10.0.2.2";
    r = await ba(["run", "--network", mode, u.rootfs, "sh", "-c", `printf 'GET / HTTP/1.0\\r\\n\\r\\n' | timeout 3 nc ${addr} ${hostPort}`]);
    expect(r.stdout).not.toContain("hello from the host");
  }, 20000);

  test("the host reaches busybox httpd inside through -p (TCP), and a UDP server (UDP)", async () => {
    const tcp = freePort();
    const udp = freePort();
    const id = b(["run", "-d", "--network", mode, "-p", `127.0.0.1:${tcp}:80`, "-p", `127.0.0.1:${udp}:5353/udp`, "-v", `${www}:/srv:ro`, u.rootfs, "sh", "-c", "httpd -p 80 -h /srv; exec udp-echo 5353"]).stdout.trim();
    try {
      expect(id).toMatch(/^[0-9a-f]{64}$/);
      let body = "";
      for (let i = 0; i < 50 && !body; i++) {
        body = await fetch(`http://127.0.0.1:${tcp}/`).then((r) => r.text(), () => "");
        if (!body) await Bun.sleep(100);
      }
      expect(body).toBe("hello from the container\n");
      // one datagram in; the server inside logs it (Debian 12's pasta loses UDP replies on
      // the loopback, so the test reads the server's log rather than its answer)
      const sock = await Bun.udpSocket({ hostname: "127.0.0.1" });
      let seen = "";
      for (let i = 0; i < 50 && !seen.includes("got ping"); i++) {
        sock.send("ping", udp, "127.0.0.1");
        await Bun.sleep(100);
        seen = b(["logs", id]).stdout;
      }
      sock.close();
      expect(seen).toContain("got ping");
    } finally {
      b(["rm", "-f", id]);
    }
    await noHelpers();
  }, 20000);

  test("no helper is left after the container exits, is killed, or is removed", async () => {
    expect(b(["run", "--network", mode, u.rootfs, "true"]).code).toBe(0);
    await noHelpers();
    const killed = b(["run", "-d", "--network", mode, u.rootfs, "sleep", "100"]).stdout.trim();
    expect(b(["kill", killed]).code).toBe(0);
    expect(b(["wait", killed]).stdout).toBe("137\n");
    await noHelpers();
    expect(b(["rm", killed]).code).toBe(0);
    const id = b(["run", "-d", "--network", mode, u.rootfs, "sleep", "100"]).stdout.trim();
    expect(helpers().length).toBe(1);
    // the stage itself killed: the helper dies with it
    const stage = Number(readFileSync(join(env.XDG_RUNTIME_DIR!, "bunker/containers", id, "pid"), "utf8").split(" ")[0]);
    process.kill(stage, "SIGKILL");
    await noHelpers();
    expect(b(["rm", "-f", id]).code).toBe(0);
    const id2 = b(["run", "-d", "--network", mode, u.rootfs, "sleep", "100"]).stdout.trim();
    expect(b(["rm", "-f", id2]).code).toBe(0);
    await noHelpers();
  });

  test("a setup that fails while the helper starts says its own error, not the helper's, and leaves nothing", async () => {
    // the helper starts as the container sets up its root; here a file cannot cover a directory
    const r = b(["run", "--rm", "--network", mode, ...(mode === "slirp4netns" ? ["-p", `127.0.0.1:${freePort()}:80`] : []), "-v", "/etc/hostname:/etc", u.rootfs, "true"]);
    expect(r.stderr.trim()).toBe("bunker: bind /etc/hostname on /etc: ENOTDIR (Not a directory)");
    expect(r.code).toBe(125);
    await noHelpers();
  });
});

test("a helper that fails only because the setup failed first is not heard; one that fails on its own is, in one line", () => {
  // a pasta that complains while the container fails, as the real one can when it finds it gone ("Couldn't open network namespace")
  const fake = mkdtempSync(join(h.dir, "fakebin-"));
  chmodSync(fake, 0o755);
  writeFileSync(join(fake, "pasta"), "#!/bin/sh\necho 'pasta: the namespace is gone' >&2\nexec sleep 5\n", { mode: 0o755 });
  const PATH = `${fake}:/usr/bin:/bin`;
  const late = b(["run", "--rm", "--network", "pasta", "-v", "/etc/hostname:/etc", u.rootfs, "true"], { env: { PATH } });
  expect(late.stderr.trim()).toBe("bunker: bind /etc/hostname on /etc: ENOTDIR (Not a directory)");
  expect(late.code).toBe(125);
  writeFileSync(join(fake, "pasta"), "#!/bin/sh\necho 'pasta: a first line' >&2\necho 'pasta: the reason' >&2\nexit 1\n", { mode: 0o755 });
  const own = b(["run", "--rm", "--network", "pasta", u.rootfs, "true"], { env: { PATH } });
  expect(own.stderr.trim()).toBe("bunker: start pasta: exited with status 1: pasta: the reason");
  expect(own.code).toBe(125);
});

test.skipIf(!modes.length)("a published port in use fails before the container starts, and leaves nothing", async () => {
  const r = b(["run", "--name", "busy", "-p", `127.0.0.1:${hostPort}:80`, u.rootfs, "true"]);
  expect(r.code).toBe(125);
  expect(r.stderr.trim()).toBe(`bunker: cannot publish 127.0.0.1:${hostPort}/tcp: the port is already in use on the host; choose another with -p`);
  expect(b(["ps", "-a", "--json"]).stdout.trim()).toBe("[]");
  await noHelpers();
});

test("-p needs a user-mode network; bad -p, --dns and --add-host are refused", () => {
  const cases: [string[], string][] = [
    [["--network", "none", "-p", "8080:80"], "-p needs a user-mode network (--network pasta or slirp4netns), not none"],
    [["-p", "80"], 'invalid -p "80": use [HOSTIP:]HOSTPORT:CONTAINERPORT[/tcp|/udp]'],
    [["-p", "8000-8010:80-81"], 'invalid -p "8000-8010:80-81": the two ranges differ in length'],
    [["-p", "8080:80/sctp"], 'invalid -p "8080:80/sctp": the protocol must be tcp or udp'],
    [["--dns", "example"], 'invalid --dns "example": give an IP address'],
    [["--add-host", "nocolon"], 'invalid --add-host "nocolon": use NAME:IP, or NAME:host-gateway to reach the host'],
    [["--network", "none", "--add-host", "h:host-gateway"], "--add-host h:host-gateway needs --network pasta or slirp4netns, not none"],
    [["--network", "bridge"], 'unknown network mode "bridge": use none, host, pasta or slirp4netns'],
  ];
  for (const [flags, message] of cases) {
    const r = b(["run", ...flags, u.rootfs, "true"]);
    expect([r.code, r.stderr.trim()]).toEqual([125, `bunker: ${message}`]);
  }
});

test("/etc/hosts names the container; --add-host and --dns are written; resolv.conf suits the mode", () => {
  let r = b(["run", "--network", "none", "--name", "named1", "-h", "box", "--add-host", "db:10.9.8.7", "--dns", "10.1.2.3", "--dns", "10.1.2.4", u.rootfs, "cat", "/etc/hosts", "/etc/resolv.conf"]);
  expect(r.stdout).toContain("127.0.1.1\tbox named1\n");
  expect(r.stdout).toContain("10.9.8.7\tdb\n");
  expect(r.stdout).toContain("nameserver 10.1.2.3\nnameserver 10.1.2.4\n");
  if (has("slirp4netns")) {
    r = b(["run", "--network", "slirp4netns", u.rootfs, "grep", "nameserver", "/etc/resolv.conf"]);
    expect(r.stdout).toBe("nameserver 10.0.2.3\n");
  }
  r = b(["run", "--network", "host", u.rootfs, "cat", "/etc/resolv.conf"]);
  expect(r.stdout).toBe(readFileSync("/etc/resolv.conf", "utf8"));
});

test.skipIf(!asRoot)("the user's own servers stay out of reach: nothing from the container reaches the host's ports by default", async () => {
  // pasta is run with -T none -U none and --no-map-gw; only host-gateway opens the way
  const r = await ba(["run", u.rootfs, "sh", "-c", get("127.0.0.1", hostPort)]);
  expect(r.stdout).not.toContain("hello from the host");
});
