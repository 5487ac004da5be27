// Sandboxed output frames: HTML, JavaScript and SVG outputs render in
// <iframe sandbox="allow-scripts"> served from the blob server (another origin), so an
// output can read neither the page's cookie nor call its API. Page -> frame:
// {type:"render", outputs}; frame -> page: {type:"ready"} and {type:"height", height}.
// Messages are accepted only from our own frames (event.source).
import type { Output } from "./model";

interface FrameEntry {
  frame: HTMLIFrameElement;
  outputs: Output[];
  ready: boolean;
}

const frames = new Map<Window, FrameEntry>();
const pending = new Set<FrameEntry>();
let frameUrl = "";
let listening = false;

export function setFrameUrl(url: string): void {
  frameUrl = url;
}

export function framesAvailable(): boolean {
  return frameUrl !== "";
}

function onMessage(event: MessageEvent): void {
  const source = event.source as Window | null;
  if (!source) return;
  let entry = frames.get(source);
  if (!entry) {
    // A frame's window exists only once it is attached: match it now.
    for (const candidate of pending) {
      if (candidate.frame.contentWindow === source) {
        entry = candidate;
        pending.delete(candidate);
        frames.set(source, candidate);
        break;
      }
    }
  }
  if (!entry) return;
  const data = event.data as { type?: string; height?: number } | null;
  if (data?.type === "ready") {
    entry.ready = true;
    source.postMessage({ type: "render", outputs: entry.outputs }, "*");
  } else if (data?.type === "height" && typeof data.height === "number" && Number.isFinite(data.height)) {
    entry.frame.style.height = `${Math.min(Math.max(Math.ceil(data.height), 16), 20000)}px`;
  }
}

/** An iframe that renders `outputs` (nbformat, blob refs already resolved). */
export function outputFrame(outputs: Output[]): HTMLIFrameElement {
  if (!listening) {
    listening = true;
    window.addEventListener("message", onMessage);
  }
  const frame = document.createElement("iframe");
  frame.className = "runt-output-frame";
  frame.setAttribute("sandbox", "allow-scripts allow-popups allow-popups-to-escape-sandbox");
  frame.setAttribute("referrerpolicy", "no-referrer");
  frame.setAttribute("title", "output");
  frame.style.height = "24px";
  frame.src = frameUrl;
  pending.add({ frame, outputs, ready: false });
  return frame;
}

/** Forget frames no longer in the document (their outputs were replaced). Called a while
 * after renders, when every new frame has been attached. */
export function pruneFrames(): void {
  for (const [win, entry] of frames) if (!entry.frame.isConnected) frames.delete(win);
  for (const entry of pending) if (!entry.frame.isConnected) pending.delete(entry);
}
