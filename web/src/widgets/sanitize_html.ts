// Stands in for the `sanitize-html` package under @jupyter-widgets/base-manager (its
// inline_sanitize of HTML descriptions): DOMPurify, already in the page, instead of
// sanitize-html + postcss (~250 KB more). Same allow-lists, its own DOMPurify instance.
import createDOMPurify from "dompurify";

interface Options {
  allowedTags?: string[];
  allowedAttributes?: Record<string, string[]>;
}

const purify = createDOMPurify(window);

export default function sanitize(html: string, options: Options = {}): string {
  const attributes = Object.values(options.allowedAttributes ?? {})
    .flat()
    .filter((name) => !name.includes("*"));
  return purify.sanitize(html, {
    ALLOWED_TAGS: options.allowedTags ?? [],
    ALLOWED_ATTR: attributes,
    ALLOW_ARIA_ATTR: true,
    ALLOW_DATA_ATTR: false,
  });
}
