import { expect, test } from "bun:test";
import { appSpec, portableSpec } from "../../src/bundle/format.ts";
import { chooseMaps } from "../../src/linux/idmap.ts";
import { defaultNamespaces, READONLY_PATHS } from "../../src/spec/defaults.ts";
import type { Spec } from "../../src/spec/types.ts";
import { type BuildInput, buildEnv, buildSpec, parseEnvFile, parseTmpfs, parseVolume, resolveUser, type RunFlags } from "../../src/spec/build.ts";

const flags = (f: Partial<RunFlags> = {}): RunFlags => ({
  env: [], envFile: [], volume: [], tmpfs: [], readOnly: false, init: false, tty: false,
  interactive: false, capAdd: [], capDrop: [], ...f,
});
const who = { uid: 1000, gid: 1000, user: "alice" };
const ranges = { uids: [{ start: 100000, count: 65536 }], gids: [{ start: 100000, count: 65536 }] };
const helpers = { newuidmap: "/usr/bin/newuidmap", newgidmap: "/usr/bin/newgidmap" };

const input = (f: Partial<RunFlags> = {}, more: Partial<BuildInput> = {}): BuildInput => ({
  flags: flags(f),
  command: ["sh"],
  rootfs: "/nonexistent-rootfs",
  id: "0123456789abcdef0123",
  maps: (mode) => chooseMaps(mode, who, () => ranges, (n) => helpers[n]),
  hostEnv: { FROM_HOST: "h" },
  readFile: () => "",
  ...more,
});

test("run defaults: every namespace, Docker's caps, the id prefix as host name", () => {
  const { spec, opts } = buildSpec(input());
  expect(spec.linux!.namespaces!.map((n) => n.type).sort()).toEqual(["cgroup", "ipc", "mount", "network", "pid", "user", "uts"]);
  expect(spec.hostname).toBe("0123456789ab");
  expect(spec.process!.capabilities!.effective).toHaveLength(14);
  expect(spec.process!.noNewPrivileges).toBe(true);
  expect(spec.process!.terminal).toBe(false);
  expect(spec.linux!.uidMappings).toHaveLength(2);
  expect(spec.process!.env).toContain("HOSTNAME=0123456789ab");
  expect(spec.process!.env).toContain("HOME=/");
  expect(opts).toEqual({ interactive: false, init: false, name: undefined });
});

test("--network host drops the network namespace; unknown modes are refused", () => {
  const { spec } = buildSpec(input({ network: "host" }));
  expect(spec.linux!.namespaces!.some((n) => n.type === "network")).toBe(false);
  expect(() => buildSpec(input({ network: "bridge" }))).toThrow('unknown network mode "bridge"');
});

test("--userns=single, -t, --read-only, -w, -h", () => {
  const { spec } = buildSpec(input({ userns: "single", tty: true, readOnly: true, workdir: "/srv", hostname: "web" }));
  expect(spec.linux!.uidMappings).toEqual([{ containerID: 0, hostID: 1000, size: 1 }]);
  expect(spec.process!.terminal).toBe(true);
  expect(spec.process!.env).toContain("TERM=xterm");
  expect(spec.root!.readonly).toBe(true);
  expect(spec.process!.cwd).toBe("/srv");
  expect(spec.hostname).toBe("web");
  expect(() => buildSpec(input({ workdir: "rel" }))).toThrow("--workdir must be an absolute path");
  // empty, as Docker takes them: not given (the image's user and working directory)
  const image = { User: "33:33", WorkingDir: "/app" };
  const empty = buildSpec(input({ user: "", workdir: "" }, { image })).spec.process!;
  expect([empty.user.uid, empty.user.gid, empty.cwd]).toEqual([33, 33, "/app"]);
  expect(() => buildSpec(input({ userns: "keep-id" }))).toThrow("--userns must be auto or single");
});

test("a user other than root keeps the bounding set but no effective capabilities", () => {
  const { spec } = buildSpec(input({ user: "1000:1000", capAdd: ["NET_ADMIN"] }));
  expect(spec.process!.user).toMatchObject({ uid: 1000, gid: 1000 });
  expect(spec.process!.capabilities!.bounding).toContain("CAP_NET_ADMIN");
  expect(spec.process!.capabilities!.effective).toEqual([]);
});

test("a bundle keeps its own config unless a flag changes it", () => {
  const bundle = {
    ociVersion: "1.0.2",
    process: { user: { uid: 0, gid: 0 }, args: ["app"], env: ["A=1"], cwd: "/app", capabilities: { bounding: ["CAP_KILL"] } },
    root: { path: "rootfs" },
    linux: { namespaces: [{ type: "pid" as const }, { type: "mount" as const }], uidMappings: [{ containerID: 0, hostID: 1000, size: 1 }], gidMappings: [{ containerID: 0, hostID: 1000, size: 1 }] },
  };
  const { spec, notice } = buildSpec(input({}, { bundle, command: [] }));
  expect(spec.process!.args).toEqual(["app"]);
  expect(spec.process!.capabilities).toEqual({ bounding: ["CAP_KILL"] });
  expect(spec.linux!.uidMappings).toEqual(bundle.linux.uidMappings);
  expect(spec.root!.path).toBe("/nonexistent-rootfs");
  expect(spec.hostname).toBeUndefined(); // no uts namespace, no host name
  expect(notice).toBeUndefined();
  expect(bundle.process.args).toEqual(["app"]); // the input is not changed
  const replaced = buildSpec(input({ network: "none" }, { bundle, command: ["other", "arg"] })).spec;
  expect(replaced.process!.args).toEqual(["other", "arg"]);
  expect(replaced.linux!.namespaces!.map((n) => n.type)).toContain("network");
});

test("--network host shares the host's name, and $HOSTNAME agrees", () => {
  const { spec } = buildSpec(input({ network: "host" }, { hostHostname: () => "myhost" }));
  expect(spec.hostname).toBe("myhost");
  expect(spec.process!.env).toContain("HOSTNAME=myhost");
});

test("a bundle's capabilities: -u alone keeps them, --cap-add/--cap-drop change each set, nothing is granted from Docker's", () => {
  const bundle = {
    ociVersion: "1.0.2",
    process: { user: { uid: 0, gid: 0 }, args: ["app"], cwd: "/", capabilities: { bounding: ["CAP_KILL"], permitted: ["CAP_KILL"], ambient: ["CAP_KILL"] } },
    root: { path: "rootfs" },
    linux: {},
  };
  expect(buildSpec(input({ user: "0" }, { bundle, command: [] })).spec.process!.capabilities).toEqual(bundle.process.capabilities);
  const bare = { ...bundle, process: { ...bundle.process, capabilities: undefined } };
  expect(buildSpec(input({ user: "0" }, { bundle: bare, command: [] })).spec.process!.capabilities).toBeUndefined();
  expect(buildSpec(input({ capAdd: ["CHOWN"] }, { bundle, command: [] })).spec.process!.capabilities).toEqual({
    bounding: ["CAP_CHOWN", "CAP_KILL"],
    effective: ["CAP_CHOWN"],
    permitted: ["CAP_CHOWN", "CAP_KILL"],
    inheritable: ["CAP_CHOWN"],
    ambient: ["CAP_CHOWN", "CAP_KILL"],
  });
});

test("a bundle with a terminal gets stdin, as runc gives it", () => {
  const bundle = { ociVersion: "1.0.2", process: { user: { uid: 0, gid: 0 }, args: ["sh"], cwd: "/", terminal: true }, root: { path: "r" } };
  expect(buildSpec(input({}, { bundle, command: [] })).opts.interactive).toBe(true);
  expect(buildSpec(input({ tty: true })).opts.interactive).toBe(false);
});

test("mount destinations are normalised; / and duplicates are refused", () => {
  const { spec } = buildSpec(input({ volume: ["/h/../h2:/data/./x/"], tmpfs: ["/run//t"] }));
  expect(spec.mounts!.slice(-2).map((m) => [m.source, m.destination])).toEqual([["/h2", "/data/x"], ["tmpfs", "/run/t"]]);
  expect(() => buildSpec(input({ volume: ["/x:/.."] }))).toThrow("cannot mount over /");
  expect(() => buildSpec(input({ tmpfs: ["/"] }))).toThrow("cannot mount over /");
  expect(() => buildSpec(input({ volume: ["/a:/d"], tmpfs: ["/d/"] }))).toThrow("duplicate mount point: /d");
});

test("--tmpfs takes Docker's options only", () => {
  expect(parseTmpfs("/t:size=64m,mode=1777,uid=33,exec").options).toEqual(["nosuid", "nodev", "noexec", "size=64m", "mode=1777", "uid=33", "exec"]);
  expect(() => parseTmpfs("/t:sizee=1m")).toThrow('invalid --tmpfs "/t:sizee=1m": unknown option "sizee=1m"');
});

test("environment: image env, defaults, then --env-file and -e; NAME alone passes the caller's value", () => {
  const env = buildEnv(["PATH=/x", "KEEP=1", "OVER=image"], {
    hostname: "h", tty: false, overrides: ["OVER=flag", "FROM_HOST", "UNSET_ON_HOST", "EMPTY="], hostEnv: { FROM_HOST: "h" },
  });
  expect(env).toEqual(["PATH=/x", "KEEP=1", "OVER=flag", "HOSTNAME=h", "HOME=/", "FROM_HOST=h", "EMPTY="]);
  // an image's own HOME wins over its user's; a value may hold "=", from the image and from -e alike
  const eq = buildEnv(["HOME=/srv", "A=x=y"], { home: "/home/app", tty: false, overrides: ["B=1=2"], hostEnv: {} });
  expect(eq).toEqual(["HOME=/srv", "A=x=y", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "B=1=2"]);
  expect(() => buildEnv([], { tty: false, overrides: ["=x"], hostEnv: {} })).toThrow("invalid environment variable");
  expect(parseEnvFile("\uFEFF# c\n\nA=1\r\nB\n  # indented comment\n  C=3\n")).toEqual(["A=1", "B", "C=3"]);
  expect(() => parseEnvFile("BAD NAME=1")).toThrow("invalid line in env file");
});

test("volumes and tmpfs mounts", () => {
  expect(parseVolume("/h:/c:ro")).toEqual({ destination: "/c", type: "bind", source: "/h", options: ["rbind", "ro", "rprivate"] });
  expect(parseVolume("/h:/c:rw,rshared").options).toEqual(["rbind", "rw", "rshared"]);
  expect(() => parseVolume("name:/c")).toThrow("named volumes are not supported yet");
  expect(() => parseVolume("/h:c")).toThrow("the destination must be an absolute path");
  expect(() => parseVolume("/h:/")).toThrow("cannot mount over /");
  expect(() => parseVolume("/h:/c:rx")).toThrow('unknown option "rx"');
  expect(() => parseVolume("/h")).toThrow("invalid volume");
  expect(parseTmpfs("/run:size=1m,mode=700")).toEqual({ destination: "/run", type: "tmpfs", source: "tmpfs", options: ["nosuid", "nodev", "noexec", "size=1m", "mode=700"] });
});

test("an env-file NAME the caller has not set is skipped; -e NAME unsets it", () => {
  const bundle = { ociVersion: "1.0.2", process: { user: { uid: 0, gid: 0 }, args: ["sh"], cwd: "/", env: ["KEEP=image"] }, root: { path: "r" } };
  const fromFile = buildSpec(input({ envFile: ["f"] }, { bundle, command: [], readFile: () => "KEEP\nFROM_HOST\n", hostEnv: { FROM_HOST: "h" } })).spec.process!.env!;
  expect(fromFile).toContain("KEEP=image");
  expect(fromFile).toContain("FROM_HOST=h");
  const fromFlag = buildSpec(input({ env: ["KEEP"] }, { bundle, command: [] })).spec.process!.env!;
  expect(fromFlag.some((e) => e.startsWith("KEEP="))).toBe(false);
});

test("-u looks names up in the container's passwd and group files", () => {
  const files: Record<string, string> = {
    "/etc/passwd": "root:x:0:0:root:/root:/bin/sh\nwww:x:33:33:www:/var/www:/bin/false\n",
    "/etc/group": "root:x:0:\nwww:x:33:\nadm:x:4:www,other\nstaff:x:50:www\n",
  };
  const read = (p: string) => files[p];
  expect(resolveUser("www", read)).toEqual({ uid: 33, gid: 33, home: "/var/www", groups: [4, 50] });
  // a group given is the only one, as in Docker: no supplementary groups from /etc/group
  expect(resolveUser("33:adm", read)).toEqual({ uid: 33, gid: 4, home: "/var/www", groups: [] });
  expect(resolveUser("www:staff", read)).toEqual({ uid: 33, gid: 50, home: "/var/www", groups: [] });
  expect(resolveUser("33", read).groups).toEqual([4, 50]);
  expect(resolveUser("1234", read)).toEqual({ uid: 1234, gid: 0, home: undefined, groups: [] });
  expect(resolveUser("1234:5", read).gid).toBe(5);
  expect(() => resolveUser("nobody", read)).toThrow("unable to find user nobody");
  expect(() => resolveUser("www:nogroup", read)).toThrow("unable to find group nogroup");
  expect(() => resolveUser(":1", read)).toThrow('invalid user ":1"');
  expect(() => resolveUser("1000:", read)).toThrow('invalid user "1000:"');
  expect(() => resolveUser("a:b:c", read)).toThrow('invalid user "a:b:c"');
});

test("--entrypoint, as Docker: replaces the image's Entrypoint and drops its Cmd; \"\" runs the command alone", () => {
  const image = { Entrypoint: ["/bin/echo", "ep"], Cmd: ["cmd"] };
  const args = (f: Partial<RunFlags>, command: string[]) => buildSpec(input(f, { image, command })).spec.process!.args;
  expect(args({}, [])).toEqual(["/bin/echo", "ep", "cmd"]);
  expect(args({}, ["x"])).toEqual(["/bin/echo", "ep", "x"]);
  expect(args({ entrypoint: "/bin/sh" }, [])).toEqual(["/bin/sh"]);
  expect(args({ entrypoint: "/bin/sh" }, ["-c", "id"])).toEqual(["/bin/sh", "-c", "id"]);
  // Docker sends [""], which keeps the daemon's merge() from taking the image's Cmd: "no command specified"
  expect(() => args({ entrypoint: "" }, [])).toThrow('--entrypoint "" runs neither');
  expect(args({ entrypoint: "" }, ["id"])).toEqual(["id"]);
  expect(() => buildSpec(input({}, { image: {}, command: [] }))).toThrow("the image has no command");
  // a root filesystem or a bundle: the entrypoint, then the command
  expect(buildSpec(input({ entrypoint: "/bin/sh" }, { command: ["-c", "id"] })).spec.process!.args).toEqual(["/bin/sh", "-c", "id"]);
});

test("the image's volumes no mount covers get their mount points", () => {
  const image = { Cmd: ["sh"], Volumes: { "/data": {}, "/logs/": {}, "/var//db": {}, "/": {}, "/bound": {} } };
  const { opts } = buildSpec(input({ volume: ["/tmp:/bound"] }, { image, command: [] }));
  expect(opts.volumes).toEqual(["/data", "/logs", "/var/db"]);
  expect(buildSpec(input({}, { image: { Cmd: ["sh"] }, command: [] })).opts.volumes).toBeUndefined();
});

test("a bundle made from an image keeps that image's Entrypoint when a command is given, as Docker does", () => {
  const bundle = {
    ociVersion: "1.0.2",
    process: { user: { uid: 0, gid: 0 }, args: ["/bin/echo", "ep", "cmd"], cwd: "/" },
    root: { path: "rootfs" },
  };
  const args = (command: string[], entrypoint?: string[]) => buildSpec(input({}, { bundle, command, bundleImage: entrypoint && { Entrypoint: entrypoint } })).spec.process!.args;
  expect(args([], ["/bin/echo", "ep"])).toEqual(["/bin/echo", "ep", "cmd"]);
  expect(args(["x", "y"], ["/bin/echo", "ep"])).toEqual(["/bin/echo", "ep", "x", "y"]);
  // a container started with --entrypoint (its args do not begin with the image's), or a plain bundle: replaced whole
  expect(args(["x"], ["/bin/other"])).toEqual(["x"]);
  expect(args(["x"])).toEqual(["x"]);
  // --entrypoint "" drops the image's Entrypoint here too
  expect(buildSpec(input({ entrypoint: "" }, { bundle, command: ["x"], bundleImage: { Entrypoint: ["/bin/echo", "ep"] } })).spec.process!.args).toEqual(["x"]);
});

test("-u on an imported bundle looks HOME up again, unless its image set its own; a plain bundle's stays", () => {
  const bundle = { ociVersion: "1.0.2", process: { user: { uid: 1234, gid: 1234 }, args: ["sh"], cwd: "/", env: ["HOME=/home/app"] }, root: { path: "rootfs" } };
  const readRoot = (p: string) => (p === "/etc/passwd" ? "root:x:0:0:root:/root:/bin/sh\n" : undefined);
  const home = (bundleImage?: { Env?: string[] }) => buildSpec(input({ user: "0" }, { bundle, bundleImage, readRoot })).spec.process!.env!.find((e) => e.startsWith("HOME="));
  expect(home({})).toBe("HOME=/root");
  expect(home({ Env: ["HOME=/data"] })).toBe("HOME=/home/app"); // the bundle's env holds the image's HOME (here its container's, as exported)
  expect(home(undefined)).toBe("HOME=/home/app"); // a bundle run as it is: its config.json says
});

test("an imported bundle's config: what bunker exports passes whole and unchanged by a second pass; what reaches the host is named and left out", () => {
  // a container's config as export writes it: -v gone (it travels as a declared volume), --tmpfs and -p's netns kept
  const built = buildSpec(input({ tmpfs: ["/cache"], volume: ["/srv/data:/data"], env: ["APP=1"], hostname: "app" })).spec;
  const exported = portableSpec(built);
  delete exported.linux!.uidMappings;
  delete exported.linux!.gidMappings;
  const once = appSpec(exported);
  expect(once.dropped).toEqual([]);
  expect(once.spec.process).toEqual(exported.process);
  expect(once.spec.mounts).toEqual(exported.mounts);
  expect(once.spec.linux!.namespaces).toEqual(exported.linux!.namespaces);
  expect(appSpec(once.spec).spec).toEqual(once.spec);
  // a --network host container's: without the bind of the host's /sys (export left it out), sysfs in its place, as the network namespace it gets has one
  const host = portableSpec(buildSpec(input({ network: "host" })).spec);
  const app = appSpec(host);
  expect(app.dropped).toEqual([]);
  expect(app.spec.mounts!.map((m) => `${m.destination}:${m.type}`)).toEqual(["/proc:proc", "/dev:tmpfs", "/dev/pts:devpts", "/dev/shm:tmpfs", "/dev/mqueue:mqueue", "/sys:sysfs", "/sys/fs/cgroup:cgroup"]);
  expect(app.spec.linux!.namespaces!.map((n) => n.type)).toContain("network");
  // a hostile one
  const evil = structuredClone(exported) as Spec & { hooks?: unknown };
  evil.hooks = { prestart: [{ path: "/bin/sh" }] };
  evil.mounts!.push({ destination: "/x", type: "tmpfs", source: "/home/me" }, { destination: "/y", type: "tmpfs", source: "tmpfs", options: ["bind"] }, { destination: "/p", type: "proc", source: "proc" });
  evil.mounts![0] = { ...evil.mounts![0]!, options: [] }; // its /proc without nosuid, noexec, nodev: made as bunker makes it
  evil.linux!.readonlyPaths = [];
  evil.linux!.namespaces = [{ type: "network", path: "/proc/1/ns/net" }, { type: "mount" }];
  evil.linux!.cgroupsPath = "/user.slice";
  evil.linux!.seccomp = { defaultAction: "SCMP_ACT_ALLOW" };
  evil.linux!.devices = [{ path: "/dev/sda", type: "b", major: 8, minor: 0 }];
  evil.process!.capabilities = { bounding: ["CAP_CHOWN", "CAP_SYS_ADMIN"], effective: ["CAP_SYS_PTRACE"], ambient: ["CAP_CHOWN"], inheritable: ["CAP_CHOWN"] };
  const out = appSpec(evil);
  expect(out.dropped).toEqual([
    "inheritable capabilities",
    "ambient capabilities",
    "capability CAP_SYS_ADMIN",
    "capability CAP_SYS_PTRACE",
    "mount of /home/me on /x",
    "mount of tmpfs on /y",
    "mount of proc on /p",
    "joining the network namespace at /proc/1/ns/net",
    "the host's pid namespace",
    "the host's ipc namespace",
    "the host's uts namespace",
    "hooks",
    "a seccomp profile",
    "device nodes",
  ]);
  expect(out.spec.process!.capabilities).toEqual({ bounding: ["CAP_CHOWN"], effective: [], inheritable: [], ambient: [] });
  // a user other than root has none in effect, as bunker run gives any image's; nor after -u, whatever the bundle says
  const nonRoot = structuredClone(exported);
  nonRoot.process!.user = { uid: 1000, gid: 1000 };
  nonRoot.process!.capabilities = { bounding: ["CAP_CHOWN"], effective: ["CAP_CHOWN"], permitted: ["CAP_CHOWN"] };
  const quiet = appSpec(nonRoot);
  expect([quiet.spec.process!.capabilities, quiet.dropped]).toEqual([{ bounding: ["CAP_CHOWN"], effective: [], permitted: [] }, ["effective capabilities of user 1000", "permitted capabilities of user 1000"]]);
  const caps = (user: string) => buildSpec(input({ user }, { bundle: once.spec, bundleImage: {}, readRoot: () => undefined })).spec.process!.capabilities!;
  expect(caps("1000").effective).toEqual([]);
  expect(caps("0").effective).toEqual(caps("0").bounding);
  expect(Object.keys(out.spec)).not.toContain("hooks");
  expect(out.spec.linux!.cgroupsPath).toBeUndefined();
  expect(out.spec.linux!.namespaces).toEqual(defaultNamespaces(true));
  expect(out.spec.mounts!.filter((m) => m.type === "proc")).toEqual([{ destination: "/proc", type: "proc", source: "proc", options: ["nosuid", "noexec", "nodev"] }]);
  expect(out.spec.linux!.readonlyPaths).toEqual(READONLY_PATHS);
});
