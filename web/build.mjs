// Builds the notebook page into src/runtimed/web_assets/ (committed, shipped in the wheel):
//   notebook.js (+ chunk-*.js it imports), notebook.css, KaTeX_*.woff2, output-frame.html and
//   widget-frame.html (script and style inline),
//   manifest.json {file: sha256}.
// Deterministic: the same lockfile and sources give byte-identical files (no timestamps,
// no absolute paths, no sourcemaps).
//   node build.mjs           build into src/runtimed/web_assets
//   node build.mjs --check   build into a temp dir; exit 1 if it differs from the committed files
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import * as esbuild from "esbuild";

const here = dirname(fileURLToPath(import.meta.url));
const assets = join(here, "..", "src", "runtimed", "web_assets");
const check = process.argv.includes("--check");

/** KaTeX's CSS lists woff2, woff and ttf for every font: every browser we serve takes
 * woff2, so the others are dropped (and not shipped). */
const katexWoff2Only = {
  name: "katex-woff2-only",
  setup(build) {
    build.onLoad({ filter: /katex(\.min)?\.css$/ }, (args) => ({
      contents: readFileSync(args.path, "utf8").replace(/,\s*url\([^)]*\.(woff|ttf)\)\s*format\("(woff|truetype)"\)/g, ""),
      loader: "css",
    }));
  },
};

/** underscore (Backbone's, under the widget controls) builds `_.template` with
 * `new Function`, which the page's CSP forbids; nothing the page runs calls it. */
const noUnderscoreTemplate = {
  name: "no-underscore-template",
  setup(build) {
    build.onLoad({ filter: /underscore[\\/]modules[\\/]template\.js$/ }, () => ({
      contents: 'export default function template() { throw new Error("_.template needs eval (CSP)"); }',
      loader: "js",
    }));
  },
};

/** `sanitize-html` (base-manager's description sanitizer) pulls in postcss: DOMPurify
 * does the same job (src/widgets/sanitize_html.ts). */
const sanitizeWithDOMPurify = {
  name: "sanitize-html-is-dompurify",
  setup(build) {
    build.onResolve({ filter: /^sanitize-html$/ }, () => ({ path: join(here, "src/widgets/sanitize_html.ts") }));
  },
};

const common = {
  bundle: true,
  minify: true,
  write: false,
  sourcemap: false,
  legalComments: "eof",
  target: ["es2022", "chrome110", "firefox115", "safari16"],
  absWorkingDir: here,
  logLevel: "warning",
  charset: "utf8",
};

async function buildPage(outdir) {
  const result = await esbuild.build({
    ...common,
    // widgets.css: the controls' styles, linked by the widget chunk when it loads.
    entryPoints: { notebook: "src/main.ts", widgets: "src/widgets/widgets.css" },
    format: "esm",
    // The markdown renderer (marked, KaTeX, DOMPurify) is a chunk loaded on first use.
    splitting: true,
    chunkNames: "chunk-[hash]",
    outdir,
    assetNames: "[name]",
    loader: { ".woff2": "file" },
    plugins: [katexWoff2Only, noUnderscoreTemplate, sanitizeWithDOMPurify],
  });
  return result.outputFiles.map((f) => [relative(outdir, f.path), f.contents]);
}

/** A sandboxed frame the blob server serves: src/frame/<name>.html with <name>.ts inline. */
async function buildFrame(name) {
  const result = await esbuild.build({
    ...common,
    entryPoints: [`src/frame/${name}.ts`],
    format: "iife",
    legalComments: "none",
    outfile: `${name}.js`,
  });
  // "</script" inside the inline script would end it early.
  const script = new TextDecoder().decode(result.outputFiles[0].contents).trim().replace(/<\/script/gi, "<\\/script");
  const html = readFileSync(join(here, `src/frame/${name}.html`), "utf8").replace("/*SCRIPT*/", () => script);
  return [[`${name.replace("_", "-")}.html`, new TextEncoder().encode(html)]];
}

function sha256(bytes) {
  return createHash("sha256").update(bytes).digest("hex");
}

async function buildInto(outdir) {
  const frames = [...(await buildFrame("output_frame")), ...(await buildFrame("widget_frame"))];
  const files = [...(await buildPage(outdir)), ...frames].sort((a, b) => (a[0] < b[0] ? -1 : 1));
  const manifest = Object.fromEntries(files.map(([name, bytes]) => [name, sha256(bytes)]));
  files.push(["manifest.json", new TextEncoder().encode(JSON.stringify(manifest, null, 1) + "\n")]);
  mkdirSync(outdir, { recursive: true });
  for (const [name, bytes] of files) writeFileSync(join(outdir, name), bytes);
  return files;
}

function committedManifest(dir) {
  const path = join(dir, "manifest.json");
  return existsSync(path) ? JSON.parse(readFileSync(path, "utf8")) : {};
}

if (check) {
  const tmp = mkdtempSync(join(tmpdir(), "runt-web-"));
  try {
    const built = await buildInto(tmp);
    const problems = [];
    for (const [name, bytes] of built) {
      const committed = join(assets, name);
      if (!existsSync(committed)) problems.push(`${name}: built but not committed`);
      else if (sha256(readFileSync(committed)) !== sha256(bytes)) problems.push(`${name}: differs from the build`);
    }
    const names = new Set(built.map(([n]) => n));
    for (const name of Object.keys(committedManifest(assets))) if (!names.has(name)) problems.push(`${name}: committed but no longer built`);
    if (problems.length) {
      console.error("src/runtimed/web_assets is not the build of web/ (run: cd web && npm ci && node build.mjs):");
      for (const p of problems) console.error("  " + p);
      process.exit(1);
    }
    console.log(`web_assets match the build (${built.length} files)`);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
} else {
  // Remove what the previous build wrote (and only that: the directory may hold others' files).
  for (const name of Object.keys(committedManifest(assets))) rmSync(join(assets, name), { force: true });
  const built = await buildInto(assets);
  for (const [name, bytes] of built) console.log(`${String(bytes.length).padStart(9)}  ${name}`);
}
