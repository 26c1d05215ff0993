// Rootless networking: the mode (none, host, pasta, slirp4netns), published
// ports, and the container's /etc/hosts and /etc/resolv.conf. bunker writes
// no network stack of its own: pasta (Debian's passt package) or slirp4netns
// carries the traffic, started by the stage as a helper that lives exactly as
// long as the container (ffi/stage.c, OP_HELPER).
import { BunkerError } from "../errors.ts";
import type { Helper } from "../linux/compile.ts";
import * as sys from "../linux/sys.ts";

export type NetworkMode = "none" | "host" | "pasta" | "slirp4netns";
export const MODES: NetworkMode[] = ["none", "host", "pasta", "slirp4netns"];

/** The package each helper comes from, for messages. */
const PACKAGE: Record<string, string> = { pasta: "passt", slirp4netns: "slirp4netns" };

export interface PortMap {
  hostIp?: string;
  /** First and last port of a range (equal for one port). */
  host: [number, number];
  container: [number, number];
  proto: "tcp" | "udp";
}

function portRange(s: string, what: string, spec: string): [number, number] {
  const m = s.match(/^(\d{1,5})(?:-(\d{1,5}))?$/);
  const a = Number(m?.[1]), b = Number(m?.[2] ?? m?.[1]);
  if (!m || a < 1 || b > 65535 || b < a) throw new BunkerError(`invalid -p "${spec}": ${what} must be a port (1-65535) or a range like 8000-8010`);
  return [a, b];
}

/** -p [HOSTIP:]HOSTPORT:CONTAINERPORT[/tcp|/udp], ports or ranges of equal length; an IPv6 HOSTIP in brackets. */
export function parsePublish(spec: string): PortMap {
  let rest = spec;
  let proto: "tcp" | "udp" = "tcp";
  const slash = rest.lastIndexOf("/");
  if (slash >= 0) {
    const p = rest.slice(slash + 1);
    if (p !== "tcp" && p !== "udp") throw new BunkerError(`invalid -p "${spec}": the protocol must be tcp or udp`);
    proto = p;
    rest = rest.slice(0, slash);
  }
  let hostIp: string | undefined;
  const v6 = rest.match(/^\[([0-9a-fA-F:.]+)\]:(.*)$/);
  if (v6) (hostIp = v6[1]), (rest = v6[2]!);
  const parts = rest.split(":");
  if (!v6 && parts.length === 3) hostIp = parts.shift();
  if (parts.length !== 2) throw new BunkerError(`invalid -p "${spec}": use [HOSTIP:]HOSTPORT:CONTAINERPORT[/tcp|/udp]`);
  if (hostIp !== undefined && !/^(\d{1,3}(\.\d{1,3}){3}|[0-9a-fA-F:.]*:[0-9a-fA-F:.]*)$/.test(hostIp)) {
    throw new BunkerError(`invalid -p "${spec}": ${hostIp} is not an IP address`);
  }
  const host = portRange(parts[0]!, "HOSTPORT", spec);
  const container = portRange(parts[1]!, "CONTAINERPORT", spec);
  if (host[1] - host[0] !== container[1] - container[0]) throw new BunkerError(`invalid -p "${spec}": the two ranges differ in length`);
  return { hostIp: hostIp || undefined, host, container, proto };
}

/** --add-host NAME:IP, or NAME:host-gateway for the host (its loopback, through the helper). */
export function parseAddHost(spec: string): { name: string; ip: string } {
  const i = spec.indexOf(":");
  const name = spec.slice(0, i), ip = spec.slice(i + 1);
  if (i <= 0 || !/^[a-zA-Z0-9]([a-zA-Z0-9.-]*[a-zA-Z0-9])?$/.test(name) || !(ip === "host-gateway" || /^[0-9a-fA-F:.]+$/.test(ip))) {
    throw new BunkerError(`invalid --add-host "${spec}": use NAME:IP, or NAME:host-gateway to reach the host`);
  }
  return { name, ip };
}

export function checkDns(ip: string): string {
  if (!/^(\d{1,3}(\.\d{1,3}){3}|[0-9a-fA-F:]*:[0-9a-fA-F:]*)$/.test(ip)) throw new BunkerError(`invalid --dns "${ip}": give an IP address`);
  return ip;
}

/**
 * The mode: as asked, or pasta, then slirp4netns, then none (with a notice
 * naming the package), as Podman 5 picks. A helper asked for by name must exist.
 */
export function chooseMode(asked: string | undefined, find: (name: string) => string | undefined): { mode: NetworkMode; helper?: string; notice?: string } {
  if (asked !== undefined && !(MODES as string[]).includes(asked)) {
    throw new BunkerError(`unknown network mode "${asked}": use none, host, pasta or slirp4netns`);
  }
  if (asked === "none" || asked === "host") return { mode: asked };
  for (const m of asked ? [asked as NetworkMode] : (["pasta", "slirp4netns"] as const)) {
    const helper = find(m);
    if (helper) return { mode: m, helper };
    if (asked) throw new BunkerError(`--network ${m} needs ${m}, which is not installed: install the ${PACKAGE[m]} package`);
  }
  return { mode: "none", notice: "no user-mode network stack is installed: the container has only lo (install the passt package for pasta, or slirp4netns)" };
}

/** The host's IPv4 default gateway (/proc/net/route), which pasta gives the container too. */
export function hostGateway(routes = sys.tryRead("/proc/net/route") ?? ""): string | undefined {
  for (const line of routes.split("\n").slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f[1] !== "00000000" || !f[2] || f[2] === "00000000") continue;
    const n = Number.parseInt(f[2], 16); // little-endian
    return [n & 255, (n >> 8) & 255, (n >> 16) & 255, n >>> 24].join(".");
  }
  return undefined;
}

/** The address a container's DNS queries go to when the host's resolvers sit on its loopback. */
export const DNS_FORWARD = "169.254.1.1";
/** slirp4netns's fixed addresses. */
export const SLIRP = { gateway: "10.0.2.2", dns: "10.0.2.3" };

const range = (r: [number, number]) => (r[0] === r[1] ? `${r[0]}` : `${r[0]}-${r[1]}`);

/**
 * pasta's command line, in the foreground (the stage supervises it), writing
 * its pid to `ready` once the namespace is configured. Only the published
 * ports are forwarded, nothing from the container to the host's ports, and
 * the gateway maps to the host's loopback only when asked (host-gateway).
 */
export function pastaArgs(pasta: string, o: { ports: PortMap[]; ready: string; mapGateway: boolean; dnsForward: boolean }): string[] {
  const args = [pasta, "--config-net", "--foreground", "--quiet", "--pid", o.ready, "-T", "none", "-U", "none"];
  for (const proto of ["tcp", "udp"] as const) {
    const mine = o.ports.filter((p) => p.proto === proto);
    const flag = proto === "tcp" ? "-t" : "-u";
    if (mine.length === 0) args.push(flag, "none");
    for (const p of mine) args.push(flag, `${p.hostIp ? `${p.hostIp}/` : ""}${range(p.host)}:${range(p.container)}`);
  }
  if (!o.mapGateway) args.push("--no-map-gw");
  if (o.dnsForward) args.push("--dns-forward", DNS_FORWARD);
  args.push("{pid}");
  return args;
}

/**
 * slirp4netns's command line: it configures tap0 and says so on fd 3; with
 * published ports, an API socket takes one add_hostfwd per port. Only with
 * host-gateway may the container reach the host's loopback (10.0.2.2).
 */
export function slirpHelper(slirp: string, o: { ports: PortMap[]; socket: string; mapGateway: boolean }): Helper {
  const argv = [slirp, "--configure", "--mtu=65520", ...(o.mapGateway ? [] : ["--disable-host-loopback"]), "--ready-fd", "3"];
  const requests: { desc: string; json: string }[] = [];
  for (const p of o.ports) {
    for (let i = 0; i <= p.host[1] - p.host[0]; i++) {
      const hostPort = p.host[0] + i, guestPort = p.container[0] + i;
      const args = { proto: p.proto, host_addr: p.hostIp ?? "0.0.0.0", host_port: hostPort, guest_port: guestPort };
      requests.push({ desc: `publish ${args.host_addr}:${hostPort} -> ${guestPort}/${p.proto} through slirp4netns`, json: JSON.stringify({ execute: "add_hostfwd", arguments: args }) });
    }
  }
  if (requests.length) {
    if (o.socket.length > 107) throw new BunkerError(`the state directory's path is too long for slirp4netns's API socket (${o.socket}): set XDG_RUNTIME_DIR to a shorter path`);
    argv.push("--api-socket", o.socket);
  }
  argv.push("{pid}", "tap0");
  return { desc: "start slirp4netns", argv, ready: "", readyFd: 3, timeoutMs: 10_000, quiet: true, api: requests.length ? { socket: o.socket, requests } : undefined };
}

/** A published port another program holds fails here, before anything starts. */
export function checkPorts(ports: PortMap[]): void {
  for (const p of ports) {
    if (p.host[1] - p.host[0] > 1024) throw new BunkerError(`-p ${range(p.host)}: ranges of more than 1024 ports are not supported`);
    for (let port = p.host[0]; port <= p.host[1]; port++) {
      const err = sys.bindProbe(p.proto, p.hostIp ?? "0.0.0.0", port);
      if (err === "EADDRINUSE") throw new BunkerError(`cannot publish ${p.hostIp ? `${p.hostIp}:` : ""}${port}/${p.proto}: the port is already in use on the host; choose another with -p`);
      if (err === "EACCES") throw new BunkerError(`cannot publish ${port}/${p.proto}: ports below ${unprivilegedPortStart()} need privileges on this host (net.ipv4.ip_unprivileged_port_start); choose a higher one`);
      if (err === "EADDRNOTAVAIL") throw new BunkerError(`cannot publish on ${p.hostIp}: no interface of this host has that address`);
      if (err) throw new BunkerError(`cannot publish ${port}/${p.proto}: ${err}`);
    }
  }
}

function unprivilegedPortStart(): string {
  return sys.tryRead("/proc/sys/net/ipv4/ip_unprivileged_port_start")?.trim() ?? "1024";
}

/** /etc/hosts: localhost, the container's own names, and --add-host entries. */
export function hostsFile(o: { hostname?: string; name?: string; mode: NetworkMode; extra: { name: string; ip: string }[] }): string {
  const host = o.mode === "host" ? (sys.tryRead("/etc/hosts") ?? "127.0.0.1\tlocalhost\n") : undefined;
  const names = [o.hostname, o.name].filter(Boolean).join(" ");
  let text = host ?? "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n" + (names ? `127.0.1.1\t${names}\n` : "");
  for (const e of o.extra) text += `${e.ip}\t${e.name}\n`;
  return text;
}

const LOOPBACK_NS = /^\s*nameserver\s+(127\.|::1\s*$)/;

/**
 * /etc/resolv.conf for the mode: --dns servers if given; else the host's,
 * where the container can reach them: all with the host's network; through
 * pasta, the host's loopback resolvers by DNS_FORWARD; through slirp4netns,
 * its built-in forwarder; with none, only those off the loopback.
 */
export function resolvConf(mode: NetworkMode, dns: string[], host = sys.tryRead("/etc/resolv.conf") ?? ""): { text: string; forward: boolean } {
  const other = host.split("\n").filter((l) => l.trim() !== "" && !/^\s*nameserver\s/.test(l));
  if (dns.length) return { text: [...dns.map((d) => `nameserver ${d}`), ...other].join("\n") + "\n", forward: false };
  if (mode === "host") return { text: host, forward: false };
  if (mode === "slirp4netns") return { text: [`nameserver ${SLIRP.dns}`, ...other].join("\n") + "\n", forward: false };
  const lines = host.split("\n");
  const loopback = lines.some((l) => LOOPBACK_NS.test(l));
  const kept = lines.filter((l) => !LOOPBACK_NS.test(l));
  if (mode === "pasta" && loopback) {
    const at = kept.findIndex((l) => /^\s*nameserver\s/.test(l));
    kept.splice(at < 0 ? kept.length : at, 0, `nameserver ${DNS_FORWARD}`);
    return { text: kept.join("\n"), forward: true };
  }
  return { text: kept.join("\n"), forward: false };
}
