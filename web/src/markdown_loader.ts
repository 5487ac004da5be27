// marked, KaTeX and DOMPurify (a third of the bundle) load on first use, as a separate
// chunk: opening a notebook compiles only what its first screen needs.
export type MarkdownModule = typeof import("./markdown");

let loaded: MarkdownModule | null = null;
let loading: Promise<MarkdownModule> | null = null;

export function loadMarkdown(): Promise<MarkdownModule> {
  loading ??= import("./markdown").then((module) => (loaded = module));
  return loading;
}

/** The module if it has loaded already (render synchronously), else null. */
export function markdownIfLoaded(): MarkdownModule | null {
  return loaded;
}
