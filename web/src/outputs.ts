// Cell outputs as JupyterLab shows them. Outputs are nbformat JSON; large values are blob
// references. HTML, JavaScript and SVG go to sandboxed frames (frames.ts); everything
// else is built as DOM here (text nodes, sanitized fragments, <img>).
import { blobUrl, fetchBlobText } from "./api";
import { ansiFragment } from "./ansi";
import { framesAvailable, outputFrame } from "./frames";
import { renderJson } from "./json_tree";
import { loadMarkdown } from "./markdown_loader";
import type { JSONValue, Output } from "./model";
import { LARGE, isRef, renderAll, streamEdges, streamParts, streamSize, streamText } from "./stream";
import { WIDGET_MIME, renderWidgetView, widgetsAvailable } from "./widgets_loader";

/** JupyterLab's preference order (richest first). */
const MIME_ORDER = [
  "application/javascript",
  "text/html",
  "text/markdown",
  "text/latex",
  "image/svg+xml",
  "image/png",
  "image/jpeg",
  "image/gif",
  "image/webp",
  "application/json",
  "text/plain",
];
const FRAMED = new Set(["application/javascript", "text/html", "image/svg+xml"]);
const IMAGES = new Set(["image/png", "image/jpeg", "image/gif", "image/webp"]);

function asText(value: unknown): string {
  if (Array.isArray(value)) return value.join("");
  return typeof value === "string" ? value : "";
}

function pickMime(data: Record<string, unknown>): string | null {
  if (WIDGET_MIME in data && widgetsAvailable()) return WIDGET_MIME;
  for (const mime of MIME_ORDER) if (mime in data) return mime;
  const keys = Object.keys(data).filter((k) => !k.startsWith("application/vnd.jupyter.widget"));
  return keys.find((k) => k.endsWith("+json")) ?? null;
}

async function resolveValue(mime: string, value: unknown): Promise<unknown> {
  if (!isRef(value)) return value;
  const text = await fetchBlobText(value.blob);
  return mime === "application/json" || mime.endsWith("+json") ? (JSON.parse(text) as unknown) : text;
}

/** A copy of the outputs with every blob reference replaced by its value (for frames). */
export async function resolveOutputs(outputs: Output[]): Promise<Output[]> {
  return Promise.all(
    outputs.map(async (output) => {
      const data = output.data as Record<string, unknown> | undefined;
      if (!data || typeof data !== "object") return output;
      const resolved: Record<string, JSONValue> = {};
      for (const [mime, value] of Object.entries(data)) {
        // Only the framed type is ever sent (renderMime), so an image reference stays as it is.
        resolved[mime] = (IMAGES.has(mime) ? value : await resolveValue(mime, value)) as JSONValue;
      }
      return { ...output, data: resolved };
    }),
  );
}

function textBlock(mime: string, text: string): HTMLElement {
  const pre = document.createElement("pre");
  pre.className = "jp-RenderedText";
  pre.dataset.mime = mime;
  pre.append(ansiFragment(text));
  return pre;
}

function image(mime: string, value: unknown, metadata: Record<string, unknown>): HTMLElement {
  const img = document.createElement("img");
  img.className = "jp-RenderedImage";
  img.src = isRef(value) ? blobUrl(value.blob) : `data:${mime};base64,${asText(value).replace(/\s/g, "")}`;
  const meta = (metadata?.[mime] ?? {}) as Record<string, unknown>;
  if (typeof meta.width === "number") img.width = meta.width;
  if (typeof meta.height === "number") img.height = meta.height;
  img.alt = "output image";
  return img;
}

async function renderMime(target: HTMLElement, mime: string, raw: unknown, output: Output): Promise<void> {
  if (mime === WIDGET_MIME) {
    const plain = asText((output.data as Record<string, unknown> | undefined)?.["text/plain"]);
    await renderWidgetView(target, raw, () => textBlock("text/plain", plain), () => new OutputArea());
    return;
  }
  if (IMAGES.has(mime)) {
    target.append(image(mime, raw, (output.metadata ?? {}) as Record<string, unknown>));
    return;
  }
  const value = await resolveValue(mime, raw);
  if (FRAMED.has(mime)) {
    if (framesAvailable()) {
      target.append(outputFrame(await resolveOutputs([{ ...output, data: { [mime]: value as JSONValue } }])));
    } else if (mime === "text/html" || mime === "image/svg+xml") {
      // No frame origin configured: sanitized inline HTML, scripts dropped.
      const div = document.createElement("div");
      div.className = "jp-RenderedHTMLCommon";
      div.append((await loadMarkdown()).sanitizedFragment(asText(value)));
      target.append(div);
    } else {
      target.append(textBlock("text/plain", "[JavaScript output not shown: no sandbox frame]"));
    }
  } else if (mime === "text/markdown") {
    const div = document.createElement("div");
    div.className = "jp-RenderedMarkdown jp-RenderedHTMLCommon";
    div.append((await loadMarkdown()).renderMarkdown(asText(value)));
    target.append(div);
  } else if (mime === "text/latex") {
    const div = document.createElement("div");
    div.className = "jp-RenderedLatex";
    (await loadMarkdown()).renderLatex(div, asText(value));
    target.append(div);
  } else if (mime === "application/json" || mime.endsWith("+json")) {
    target.append(renderJson(value));
  } else {
    target.append(textBlock(mime, asText(value)));
  }
}

function renderStream(target: HTMLElement, output: Output): void {
  const parts = streamParts(output.text);
  const pre = document.createElement("pre");
  pre.className = "jp-RenderedText";
  pre.dataset.mime = "application/vnd.jupyter." + (output.name === "stderr" ? "stderr" : "stdout");
  target.append(pre);
  const size = streamSize(parts);
  if (size <= LARGE) {
    if (parts.every((p) => typeof p === "string")) pre.append(ansiFragment((parts as string[]).join("")));
    else void streamText(parts).then((text) => pre.append(ansiFragment(text)));
    return;
  }
  target.classList.add("runt-stream-truncated");
  void streamEdges(parts).then(({ head, tail }) => {
    const more = document.createElement("div");
    more.className = "runt-stream-more";
    const button = document.createElement("button");
    button.className = "runt-show-all";
    button.textContent = "show all";
    more.append(`… ${(size / 1048576).toFixed(1)} MB of output, head and tail shown … `, button);
    const tailNode = document.createElement("span");
    tailNode.append(ansiFragment(tail));
    pre.append(ansiFragment(head), more, tailNode);
    button.addEventListener("click", () => {
      pre.replaceChildren();
      target.classList.remove("runt-stream-truncated");
      void renderAll(parts, pre, () => !pre.isConnected);
    });
  });
}

function renderError(target: HTMLElement, output: Output): void {
  const traceback = Array.isArray(output.traceback) ? output.traceback.map(String).join("\n") : "";
  const text = traceback || `${String(output.ename ?? "Error")}: ${String(output.evalue ?? "")}`;
  target.append(textBlock("application/vnd.jupyter.stderr", text));
}

/** One output: `.jp-OutputArea-child` holding a prompt and `.jp-OutputArea-output`. */
export function renderOutput(output: Output): HTMLElement {
  const child = document.createElement("div");
  child.className = "jp-OutputArea-child";
  const prompt = document.createElement("div");
  prompt.className = "jp-OutputPrompt";
  const body = document.createElement("div");
  body.className = "jp-OutputArea-output";
  const type = String(output.output_type ?? "");
  body.dataset.outputType = type;
  if (type === "execute_result") {
    prompt.textContent = `[${typeof output.execution_count === "number" ? output.execution_count : " "}]:`;
  }
  child.append(prompt, body);
  const fail = (err: unknown): void => {
    body.replaceChildren(textBlock("text/plain", `[output could not be shown: ${String(err)}]`));
  };
  try {
    if (type === "stream") {
      body.dataset.mime = "text/plain";
      body.dataset.stream = output.name === "stderr" ? "stderr" : "stdout";
      if (output.name === "stderr") body.classList.add("jp-OutputArea-stderr");
      renderStream(body, output);
    } else if (type === "error") {
      body.dataset.mime = "application/vnd.jupyter.error";
      body.classList.add("jp-OutputArea-error");
      renderError(body, output);
    } else {
      const data = (output.data ?? {}) as Record<string, unknown>;
      const mime = pickMime(data);
      if (mime === null) {
        body.dataset.mime = "text/plain";
        body.append(textBlock("text/plain", `[no renderer for ${Object.keys(data).join(", ") || "empty output"}]`));
      } else {
        body.dataset.mime = mime;
        void renderMime(body, mime, data[mime], output).catch(fail);
      }
    }
  } catch (err) {
    fail(err);
  }
  return child;
}

/** An output area that re-renders only the outputs that changed: the daemon replaces an
 * output's value when it changes (stream appends, update_display_data), and Yjs hands
 * back the same object for an unchanged one, so identity is the change test. */
export class OutputArea {
  readonly node: HTMLElement;
  private rendered: { value: unknown; node: HTMLElement }[] = [];

  constructor() {
    this.node = document.createElement("div");
    this.node.className = "jp-OutputArea";
  }

  update(outputs: unknown[]): void {
    const next: { value: unknown; node: HTMLElement }[] = [];
    for (let i = 0; i < outputs.length; i++) {
      const value = outputs[i];
      const old = this.rendered[i];
      if (old && old.value === value) next.push(old);
      else next.push({ value, node: renderOutput((value ?? {}) as Output) });
    }
    // Put the nodes in order, touching only those that moved or are new.
    let cursor: ChildNode | null = this.node.firstChild;
    for (const entry of next) {
      if (entry.node === cursor) cursor = cursor.nextSibling;
      else this.node.insertBefore(entry.node, cursor);
    }
    while (cursor) {
      const after: ChildNode | null = cursor.nextSibling;
      cursor.remove();
      cursor = after;
    }
    this.rendered = next;
    this.node.classList.toggle("jp-mod-empty", next.length === 0);
  }
}
