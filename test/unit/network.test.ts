import { expect, test } from "bun:test";
import { chooseMode, DNS_FORWARD, hostGateway, hostsFile, parseAddHost, parsePublish, pastaArgs, resolvConf, slirpHelper } from "../../src/runtime/network.ts";

test("-p: ports, ranges, host addresses (IPv6 in brackets), protocols", () => {
  expect(parsePublish("8080:80")).toEqual({ hostIp: undefined, host: [8080, 8080], container: [80, 80], proto: "tcp" });
  expect(parsePublish("127.0.0.1:8000-8002:9000-9002/udp")).toEqual({ hostIp: "127.0.0.1", host: [8000, 8002], container: [9000, 9002], proto: "udp" });
  expect(parsePublish("[::1]:8080:80/tcp")).toEqual({ hostIp: "::1", host: [8080, 8080], container: [80, 80], proto: "tcp" });
  expect(() => parsePublish("80")).toThrow("use [HOSTIP:]HOSTPORT:CONTAINERPORT");
  expect(() => parsePublish("0:80")).toThrow("HOSTPORT must be a port");
  expect(() => parsePublish("8080:70000")).toThrow("CONTAINERPORT must be a port");
  expect(() => parsePublish("9-8:80-81")).toThrow("HOSTPORT must be a port");
  expect(() => parsePublish("8000-8001:80")).toThrow("the two ranges differ in length");
  expect(() => parsePublish("host:8080:80")).toThrow("host is not an IP address");
});

test("--add-host NAME:IP and NAME:host-gateway", () => {
  expect(parseAddHost("db:10.0.0.5")).toEqual({ name: "db", ip: "10.0.0.5" });
  expect(parseAddHost("host.containers.internal:host-gateway")).toEqual({ name: "host.containers.internal", ip: "host-gateway" });
  expect(parseAddHost("v6:fd00::1")).toEqual({ name: "v6", ip: "fd00::1" });
  expect(() => parseAddHost(":1.2.3.4")).toThrow("invalid --add-host");
  expect(() => parseAddHost("db:not-an-ip")).toThrow("invalid --add-host");
});

test("the mode: as asked, else pasta, slirp4netns, then none with a notice naming the package", () => {
  const find = (have: string[]) => (n: string) => (have.includes(n) ? `/usr/bin/${n}` : undefined);
  expect(chooseMode(undefined, find(["pasta", "slirp4netns"]))).toEqual({ mode: "pasta", helper: "/usr/bin/pasta" });
  expect(chooseMode(undefined, find(["slirp4netns"]))).toEqual({ mode: "slirp4netns", helper: "/usr/bin/slirp4netns" });
  const none = chooseMode(undefined, find([]));
  expect(none.mode).toBe("none");
  expect(none.notice).toContain("install the passt package");
  expect(chooseMode("host", find([]))).toEqual({ mode: "host" });
  expect(() => chooseMode("pasta", find([]))).toThrow("--network pasta needs pasta, which is not installed: install the passt package");
  expect(() => chooseMode("slirp4netns", find([]))).toThrow("install the slirp4netns package");
  expect(() => chooseMode("bridge", find([]))).toThrow('unknown network mode "bridge"');
});

test("the host's default gateway from /proc/net/route", () => {
  const routes = "Iface\tDestination\tGateway \tFlags\n eth0\t000200C0\t00000000\t0001\neth0\t00000000\t010200C0\t0003\n";
  expect(hostGateway(routes)).toBe("192.0.2.1");
  expect(hostGateway("Iface\tDestination\tGateway\n")).toBeUndefined();
});

test("pasta: only the published ports, nothing towards the host, the gateway mapped only on request", () => {
  const args = pastaArgs("/usr/bin/pasta", { ports: [parsePublish("127.0.0.1:8080-8081:80-81"), parsePublish("5353:53/udp")], ready: "/s/pasta.pid", mapGateway: false, dnsForward: true });
  expect(args).toEqual([
    "/usr/bin/pasta", "--config-net", "--foreground", "--quiet", "--pid", "/s/pasta.pid", "-T", "none", "-U", "none",
    "-t", "127.0.0.1/8080-8081:80-81", "-u", "5353:53", "--no-map-gw", "--dns-forward", DNS_FORWARD, "{pid}",
  ]);
  const open = pastaArgs("pasta", { ports: [], ready: "r", mapGateway: true, dnsForward: false });
  expect(open).toContain("none");
  expect(open).not.toContain("--no-map-gw");
});

test("slirp4netns: ready on fd 3, one add_hostfwd per published port", () => {
  const h = slirpHelper("/usr/bin/slirp4netns", { ports: [parsePublish("127.0.0.1:8000-8001:80-81/tcp")], socket: "/run/s.slirp", mapGateway: false });
  expect(h.argv).toEqual(["/usr/bin/slirp4netns", "--configure", "--mtu=65520", "--disable-host-loopback", "--ready-fd", "3", "--api-socket", "/run/s.slirp", "{pid}", "tap0"]);
  expect(h.readyFd).toBe(3);
  expect(h.api!.requests.map((r) => JSON.parse(r.json))).toEqual([
    { execute: "add_hostfwd", arguments: { proto: "tcp", host_addr: "127.0.0.1", host_port: 8000, guest_port: 80 } },
    { execute: "add_hostfwd", arguments: { proto: "tcp", host_addr: "127.0.0.1", host_port: 8001, guest_port: 81 } },
  ]);
  expect(slirpHelper("s", { ports: [], socket: "x", mapGateway: true }).argv).toEqual(["s", "--configure", "--mtu=65520", "--ready-fd", "3", "{pid}", "tap0"]);
  expect(() => slirpHelper("s", { ports: [parsePublish("1:1")], socket: `/${"x".repeat(120)}`, mapGateway: false })).toThrow("too long");
});

test("resolv.conf for each mode", () => {
  const host = "search lan\nnameserver 127.0.0.53\nnameserver 192.0.2.53\noptions edns0\n";
  expect(resolvConf("pasta", [], host)).toEqual({ text: `search lan\nnameserver ${DNS_FORWARD}\nnameserver 192.0.2.53\noptions edns0\n`, forward: true });
  expect(resolvConf("pasta", [], "nameserver 192.0.2.53\n")).toEqual({ text: "nameserver 192.0.2.53\n", forward: false });
  expect(resolvConf("none", [], host).text).toBe("search lan\nnameserver 192.0.2.53\noptions edns0\n");
  expect(resolvConf("slirp4netns", [], host).text).toBe("nameserver 10.0.2.3\nsearch lan\noptions edns0\n");
  expect(resolvConf("host", [], host).text).toBe(host);
  expect(resolvConf("pasta", ["10.1.1.1"], host)).toEqual({ text: "nameserver 10.1.1.1\nsearch lan\noptions edns0\n", forward: false });
});

test("/etc/hosts: localhost, the container's names, extra hosts", () => {
  expect(hostsFile({ hostname: "box", name: "web", mode: "pasta", extra: [{ name: "db", ip: "10.0.0.5" }] })).toBe(
    "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\tbox web\n10.0.0.5\tdb\n",
  );
});
