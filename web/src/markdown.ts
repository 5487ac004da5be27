// Markdown (marked) with math (KaTeX), sanitized by DOMPurify into a DOM fragment: no
// unsanitized string ever reaches innerHTML.
import { Marked, type TokenizerAndRendererExtension } from "marked";
import katex from "katex";
import DOMPurify from "dompurify";

function renderMath(tex: string, display: boolean): string {
  return katex.renderToString(tex, { displayMode: display, throwOnError: false, output: "htmlAndMathml" });
}

// Jupyter's conventions: $$...$$ and \[...\] display, $...$ and \(...\) inline; an inline
// $ must not be followed by a space, so "costs $5 and $6" stays text.
const blockMath: TokenizerAndRendererExtension = {
  name: "blockMath",
  level: "block",
  start: (src) => src.match(/\$\$|\\\[/)?.index,
  tokenizer(src) {
    const m = /^\$\$([\s\S]+?)\$\$[ \t]*(?:\n|$)/.exec(src) ?? /^\\\[([\s\S]+?)\\\][ \t]*(?:\n|$)/.exec(src);
    if (m) return { type: "blockMath", raw: m[0], text: m[1] };
    return undefined;
  },
  renderer: (token) => `<div class="runt-math-display">${renderMath(String(token.text), true)}</div>`,
};

const inlineMath: TokenizerAndRendererExtension = {
  name: "inlineMath",
  level: "inline",
  start: (src) => src.match(/\$|\\\(/)?.index,
  tokenizer(src) {
    const m =
      /^\$\$([\s\S]+?)\$\$/.exec(src) ??
      /^\$(?!\s)((?:\\.|[^\\$\n])+?)(?<!\s)\$(?!\d)/.exec(src) ??
      /^\\\(([\s\S]+?)\\\)/.exec(src);
    if (m) return { type: "inlineMath", raw: m[0], text: m[1], display: m[0].startsWith("$$") };
    return undefined;
  },
  renderer: (token) => renderMath(String(token.text), Boolean(token.display)),
};

const marked = new Marked({ gfm: true, breaks: false, async: false });
marked.use({ extensions: [blockMath, inlineMath] });

let hooked = false;
function purifier(): typeof DOMPurify {
  if (!hooked) {
    hooked = true;
    // Links leave the page in a new tab and cannot reach back (window.opener).
    DOMPurify.addHook("afterSanitizeAttributes", (node) => {
      if (node.tagName === "A" && node.hasAttribute("href")) {
        node.setAttribute("target", "_blank");
        node.setAttribute("rel", "noopener noreferrer");
      }
    });
  }
  return DOMPurify;
}

/** Sanitize an HTML string into a fragment (never assigned to innerHTML). */
export function sanitizedFragment(html: string): DocumentFragment {
  return purifier().sanitize(html, { RETURN_DOM_FRAGMENT: true, FORBID_TAGS: ["style", "form"] });
}

export function renderMarkdown(source: string): DocumentFragment {
  const html = marked.parse(source) as string;
  return sanitizedFragment(html);
}

/** text/latex output: "$$x$$", "$x$" or a bare environment, rendered with KaTeX. */
export function renderLatex(target: HTMLElement, latex: string): void {
  let tex = latex.trim();
  let display = true;
  const m = /^\$\$([\s\S]*)\$\$$/.exec(tex) ?? /^\\\[([\s\S]*)\\\]$/.exec(tex);
  if (m) tex = m[1];
  else if (/^\$[\s\S]*\$$/.test(tex)) {
    tex = tex.slice(1, -1);
    display = false;
  }
  katex.render(tex, target, { displayMode: display, throwOnError: false });
}
