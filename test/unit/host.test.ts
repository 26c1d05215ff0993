import { expect, test } from "bun:test";
import { checkKernel, checkUserNamespaces, unpackerHashes } from "../../src/runtime/host.ts";

const with_ = (files: Record<string, string>) => (p: string) => files[p];

test("each way a kernel can refuse user namespaces gets its own fix", () => {
  expect(() => checkUserNamespaces(with_({ "/proc/sys/user/max_user_namespaces": "0\n" }))).toThrow(
    "unprivileged user namespaces are disabled (user.max_user_namespaces=0): run 'sudo sysctl -w user.max_user_namespaces=15000'",
  );
  expect(() => checkUserNamespaces(with_({ "/proc/sys/kernel/unprivileged_userns_clone": "0\n" }))).toThrow(
    "(kernel.unprivileged_userns_clone=0): run 'sudo sysctl -w kernel.unprivileged_userns_clone=1'",
  );
  // AppArmor lets the namespace be made, then denies what is done in it: a hint for the failing step
  expect(checkUserNamespaces(with_({ "/proc/sys/kernel/apparmor_restrict_unprivileged_userns": "1\n" }))).toContain(
    "kernel.apparmor_restrict_unprivileged_userns=1",
  );
  expect(checkUserNamespaces(with_({ "/proc/sys/user/max_user_namespaces": "15000\n", "/proc/sys/kernel/unprivileged_userns_clone": "1\n" }))).toBeUndefined();
});

test("a kernel without openat2 is refused with the version it needs", () => {
  expect(() => checkKernel("5.4.0-150-generic")).toThrow("Linux 5.4 is too old: bunker needs Linux 5.6 or later (openat2)");
  expect(() => checkKernel("4.19.0")).toThrow("Linux 4.19 is too old");
  expect(() => checkKernel("5.6.0")).not.toThrow();
  expect(() => checkKernel("6.1.0-56-amd64")).not.toThrow();
});

test("the unpacker hashes a bundle's files only on a CPU with the SHA extensions, or as BUNKER_SHA256 says", () => {
  const cpu = (flags: string) => () => `processor\t: 0\nvendor_id\t: GenuineIntel\nflags\t\t: ${flags}\nbugs\t\t: spectre_v1\n`;
  const able = cpu("fpu sse2 ssse3 sse4_1 sse4_2 avx2 sha_ni");
  expect(unpackerHashes(able, undefined)).toBe(true);
  expect(unpackerHashes(cpu("fpu sse2 ssse3 sse4_1 avx2"), undefined)).toBe(false); // no sha_ni
  expect(unpackerHashes(cpu("sha_ni sse4_1"), undefined)).toBe(false); // no ssse3
  expect(unpackerHashes(() => "processor\t: 0\nFeatures\t: fp asimd sha2\n", undefined)).toBe(false); // arm64
  expect(unpackerHashes(() => undefined, undefined)).toBe(false); // no /proc
  expect(unpackerHashes(able, "bunker")).toBe(false);
  expect(unpackerHashes(able, "unpacker")).toBe(true);
  expect(() => unpackerHashes(cpu("sse4_1 ssse3"), "unpacker")).toThrow("BUNKER_SHA256=unpacker, but this CPU lacks the SHA extensions: unset it");
  expect(() => unpackerHashes(able, "yes")).toThrow('BUNKER_SHA256 must be bunker or unpacker, not "yes"');
});
