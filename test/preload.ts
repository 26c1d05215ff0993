// Loaded by bun test before any test file (bunfig.toml): what runs once after all of them.
import { afterAll } from "bun:test";
import { teardown } from "./integration/harness.ts";

// the integration harness's copies of the binary and root filesystems, and every store the tests made
afterAll(teardown);
