// Downloads that explain themselves: the page fetches the file (cookies carry the session), shows its
// progress from Content-Length as the body streams in, then hands the browser a blob: object URL to
// save. A refusal is the server's JSON error, shown as text with its details (e.g. 409
// delivery_photo_invalid lists the applications and why), never the browser's error page.

import { BASE } from "./api.js";
import { h, replace } from "./dom.js";

function sizeText(bytes) {
  if (bytes >= 1048576) return `${(bytes / 1048576).toFixed(1)} MB`;
  if (bytes >= 1024) return `${(bytes / 1024).toFixed(0)} KB`;
  return `${bytes} B`;
}

/** The file name of a Content-Disposition header (RFC 6266 filename* first), or null. */
export function dispositionName(header) {
  if (!header) return null;
  const star = /filename\*\s*=\s*UTF-8''([^;]+)/i.exec(header);
  if (star) {
    try {
      return decodeURIComponent(star[1].trim());
    } catch (err) {
      // fall through to the plain name
    }
  }
  const plain = /filename\s*=\s*"?([^";]+)"?/i.exec(header);
  return plain ? plain[1].trim() : null;
}

function detailLines(details) {
  if (!details || typeof details !== "object") return [];
  const lines = [];
  for (const [key, value] of Object.entries(details)) {
    if (Array.isArray(value)) {
      for (const item of value.slice(0, 50)) {
        lines.push(typeof item === "object" && item !== null ? Object.values(item).join(" · ") : String(item));
      }
      if (value.length > 50) lines.push(`……共 ${value.length} 条`);
    } else {
      lines.push(`${key}: ${typeof value === "object" ? JSON.stringify(value) : value}`);
    }
  }
  return lines;
}

/**
 * Fetch `path` (under the API base) into `box`: progress while it streams, the server's reason when it
 * refuses. Resolves to true when the file was handed to the browser.
 */
export async function download(path, box, { fallbackName = "download" } = {}) {
  box.className = "status download";
  const label = h("span", "正在准备下载…");
  const bar = h("progress", { max: "1" });
  replace(box, label, " ", bar);
  let resp;
  try {
    resp = await fetch(BASE + path, { credentials: "same-origin" });
  } catch (err) {
    box.className = "status error";
    replace(box, "网络错误，请检查连接后重试");
    return false;
  }
  if (!resp.ok) {
    let body = null;
    if ((resp.headers.get("Content-Type") || "").includes("application/json")) {
      try {
        body = await resp.json();
      } catch (err) {
        body = null;
      }
    }
    box.className = "status error";
    box.dataset.code = (body && body.code) || `http_${resp.status}`;
    const lines = detailLines(body && body.details);
    replace(
      box,
      h("strong", `下载被拒绝：${(body && body.message) || `HTTP ${resp.status}`}（${box.dataset.code}）`),
      lines.length ? h("ul.reasons", lines.map((line) => h("li", line))) : null,
    );
    return false;
  }
  const total = Number(resp.headers.get("Content-Length")) || 0;
  const name = dispositionName(resp.headers.get("Content-Disposition")) || fallbackName;
  const chunks = [];
  let received = 0;
  if (total) bar.max = total;
  else bar.removeAttribute("value"); // indeterminate: the size is not known in advance
  const reader = resp.body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    received += value.length;
    if (total) bar.value = received;
    label.textContent = total ? `正在下载 ${name}：${sizeText(received)} / ${sizeText(total)}` : `正在下载 ${name}：${sizeText(received)}`;
    box.dataset.received = String(received);
  }
  const blob = new Blob(chunks, { type: resp.headers.get("Content-Type") || "application/octet-stream" });
  const url = URL.createObjectURL(blob);
  const link = h("a", { href: url, download: name, hidden: true });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60000);
  box.className = "status ok";
  box.dataset.done = name;
  replace(box, `已下载 ${name}（${sizeText(received)}）`);
  return true;
}
