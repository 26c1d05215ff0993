import { expect, test } from "bun:test";
import { checkKernel, checkUserNamespaces } from "../../src/runtime/host.ts";

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
