// ANSI-coloured text (streams, tracebacks, text/plain) via ansi_up. ansi_up escapes
// & < > " ' of the text itself, so its output is markup we made, not the kernel's: it is
// parsed in an inert <template> (no script runs, nothing loads) and moved into the page.
import { AnsiUp } from "ansi_up";

export function newAnsi(): AnsiUp {
  const ansi = new AnsiUp();
  ansi.use_classes = true;
  return ansi;
}

const shared = newAnsi();

/** A fragment of coloured text. Pass a converter to carry colour state across chunks. */
export function ansiFragment(text: string, converter: AnsiUp = shared): DocumentFragment {
  if (!/[\x1b\x9b]/.test(text)) {
    // The common case: no escapes, a plain text node (faster, and nothing to parse).
    const fragment = document.createDocumentFragment();
    fragment.append(text);
    return fragment;
  }
  const template = document.createElement("template");
  template.innerHTML = converter.ansi_to_html(text);
  return template.content;
}

/** Escape sequences removed (for titles, tooltips). */
export function stripAnsi(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*(\x07|\x1b\\)/g, "");
}
