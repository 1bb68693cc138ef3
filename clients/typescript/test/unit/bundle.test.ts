// The browser bundle the gateway embeds (gateway/static/chatcluster-client.js) must be what the
// sources build today: a stale committed bundle would serve the page an old SDK.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

test("the committed browser bundle matches a fresh build", () => {
  const script = fileURLToPath(new URL("../../../scripts/bundle.mjs", import.meta.url));
  try {
    execFileSync(process.execPath, [script, "--check"], { stdio: "pipe" });
  } catch (e: any) {
    assert.fail(String(e.stderr || e.message));
  }
});
