// Builds the browser bundle the gateway serves at /chatcluster-client.js (an IIFE defining the
// global `ChatCluster`), committed as gateway/static/chatcluster-client.js so that building the
// gateway needs nothing but Rust. `--check` rebuilds in memory and fails when the committed file
// differs (a stale bundle).
import { build } from "esbuild";
import { readFileSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

const here = (p) => fileURLToPath(new URL(p, import.meta.url));
const out = here("../../../gateway/static/chatcluster-client.js");
const result = await build({
  entryPoints: [here("../src/index.ts")],
  bundle: true,
  format: "iife",
  globalName: "ChatCluster",
  target: "es2020",
  legalComments: "none",
  write: false,
  banner: { js: "// Generated from clients/typescript by `npm run build` (scripts/bundle.mjs). Do not edit." },
});
const text = result.outputFiles[0].text;
if (process.argv.includes("--check")) {
  let committed = "";
  try {
    committed = readFileSync(out, "utf8");
  } catch {
    /* missing counts as stale */
  }
  if (committed !== text) {
    console.error(`${out} is stale: run \`npm run build\` in clients/typescript and commit it`);
    process.exit(1);
  }
  console.log("bundle up to date");
} else {
  writeFileSync(out, text);
  console.log(`wrote ${out} (${text.length} bytes)`);
}
