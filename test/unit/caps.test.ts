import { expect, test } from "bun:test";
import { adjustCaps, capMask, DEFAULT_CAPS, normalizeCap } from "../../src/linux/caps.ts";

test("capability names may be lower case and without CAP_", () => {
  expect(normalizeCap("net_admin")).toBe("CAP_NET_ADMIN");
  expect(normalizeCap("CAP_CHOWN")).toBe("CAP_CHOWN");
  expect(normalizeCap("all")).toBe("ALL");
  expect(() => normalizeCap("flying")).toThrow('unknown capability "flying"');
});

test("Docker's 14 default capabilities make the mask 0xa80425fb", () => {
  expect(DEFAULT_CAPS).toHaveLength(14);
  expect(capMask(DEFAULT_CAPS).toString(16)).toBe("a80425fb");
});

test("--cap-add and --cap-drop, with ALL", () => {
  expect(adjustCaps(DEFAULT_CAPS, [], ["ALL"])).toEqual([]);
  expect(adjustCaps(DEFAULT_CAPS, ["sys_admin"], ["chown", "kill"])).not.toContain("CAP_CHOWN");
  expect(adjustCaps(DEFAULT_CAPS, ["sys_admin"], [])).toContain("CAP_SYS_ADMIN");
  expect(adjustCaps([], ["ALL"], [])).toHaveLength(41);
  expect(adjustCaps(DEFAULT_CAPS, ["NET_ADMIN"], ["ALL"])).toEqual(["CAP_NET_ADMIN"]);
});
