// The script of output-frame.html, inlined into it by build.mjs. It runs inside
// <iframe sandbox="allow-scripts"> on the blob server's origin: it renders the outputs
// the parent page posts (HTML with its scripts run, JavaScript, SVG, text) and reports
// its height. It talks only to its parent window.

type Output = { output_type?: string; data?: Record<string, unknown>; text?: unknown; traceback?: unknown };

const ORDER = ["application/javascript", "text/html", "image/svg+xml", "image/png", "image/jpeg", "text/plain"];

function text(value: unknown): string {
  return Array.isArray(value) ? value.join("") : typeof value === "string" ? value : "";
}

/** Scripts inserted by innerHTML do not run: replace each by a fresh element, in order,
 * waiting for external ones as a browser parsing the page would. */
async function runScripts(root: HTMLElement): Promise<void> {
  for (const old of Array.from(root.querySelectorAll("script"))) {
    const script = document.createElement("script");
    for (const attr of Array.from(old.attributes)) script.setAttribute(attr.name, attr.value);
    script.textContent = old.textContent;
    const loaded = script.src
      ? new Promise<void>((resolve) => {
          script.onload = () => resolve();
          script.onerror = () => resolve();
        })
      : null;
    old.replaceWith(script);
    if (loaded) await loaded;
  }
}

async function render(outputs: Output[]): Promise<void> {
  const body = document.body;
  body.replaceChildren();
  for (const output of outputs) {
    const data = output.data ?? {};
    const mime = ORDER.find((m) => m in data);
    const box = document.createElement("div");
    box.className = "output";
    body.append(box);
    if (!mime) {
      if (output.output_type === "stream") box.append(Object.assign(document.createElement("pre"), { textContent: text(output.text) }));
      continue;
    }
    const value = data[mime];
    if (mime === "text/html" || mime === "image/svg+xml") {
      box.innerHTML = text(value);
      await runScripts(box);
    } else if (mime === "application/javascript") {
      const script = document.createElement("script");
      // The classic notebook's contract: `element` is the output's node.
      (window as unknown as { element: HTMLElement }).element = box;
      script.textContent = text(value);
      box.append(script);
    } else if (mime.startsWith("image/")) {
      const img = document.createElement("img");
      img.src = `data:${mime};base64,${text(value)}`;
      box.append(img);
    } else {
      box.append(Object.assign(document.createElement("pre"), { textContent: text(value) }));
    }
  }
  reportHeight();
}

let lastHeight = -1;
function reportHeight(): void {
  const height = Math.ceil(document.documentElement.getBoundingClientRect().height);
  if (height === lastHeight) return;
  lastHeight = height;
  parent.postMessage({ type: "height", height }, "*");
}

window.addEventListener("message", (event: MessageEvent) => {
  if (event.source !== parent) return;
  const message = event.data as { type?: string; outputs?: Output[] } | null;
  if (message?.type === "render" && Array.isArray(message.outputs)) void render(message.outputs);
});
new ResizeObserver(reportHeight).observe(document.documentElement);
window.addEventListener("load", reportHeight);
parent.postMessage({ type: "ready" }, "*");
