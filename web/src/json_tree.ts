// application/json as a collapsible tree (<details>), children built when first opened so a
// huge document costs nothing until someone looks inside.

const OPEN_DEPTH = 1;

function leaf(value: unknown): HTMLElement {
  const span = document.createElement("span");
  span.className = `runt-json-${value === null ? "null" : typeof value}`;
  span.textContent = JSON.stringify(value) ?? String(value);
  return span;
}

function node(key: string | null, value: unknown, depth: number): HTMLElement {
  const isObject = typeof value === "object" && value !== null;
  if (!isObject) {
    const row = document.createElement("div");
    row.className = "runt-json-row";
    if (key !== null) row.append(`${key}: `);
    row.append(leaf(value));
    return row;
  }
  const entries: [string, unknown][] = Array.isArray(value)
    ? value.map((v, i) => [String(i), v])
    : Object.entries(value as Record<string, unknown>);
  const details = document.createElement("details");
  details.className = "runt-json-node";
  const summary = document.createElement("summary");
  const brackets = Array.isArray(value) ? `[${entries.length}]` : `{${entries.length}}`;
  summary.textContent = key === null ? brackets : `${key}: ${brackets}`;
  details.append(summary);
  let built = false;
  const build = (): void => {
    if (built) return;
    built = true;
    for (const [k, v] of entries) details.append(node(k, v, depth + 1));
  };
  details.addEventListener("toggle", () => details.open && build());
  if (depth < OPEN_DEPTH) {
    details.open = true;
    build();
  }
  return details;
}

export function renderJson(value: unknown): HTMLElement {
  const root = document.createElement("div");
  root.className = "runt-json";
  root.append(node(null, value, 0));
  return root;
}
