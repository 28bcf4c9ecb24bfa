// 照片审核: the next case at a keystroke. The standardised photo beside the admission photo, the match
// score and the quality report; A/Enter approves, R rejects (1-9/0 picks the reason, then the note,
// Enter confirms, Esc cancels), S/→ skips (gives the case back), ? shows the keys.
// Timing: performance.measure("console.decision-to-next-case") spans a decision key to the next case
// shown with both photos loaded (read by `make bench-console`).

import { ApiError, get, post, seg } from "./api.js";
import { append, clear, fmtTime, h, replace } from "./dom.js";

// Keyed by the imaging service's measure codes (services/imaging/quality.py; a unit test keeps them in step).
const MEASURE_LABELS = {
  face_count: "人脸数量",
  face_resolution: "人脸分辨率",
  head_yaw: "头部左右转动",
  head_pitch: "头部俯仰",
  head_roll: "头部歪斜",
  eyes_open: "睁眼",
  mouth_closed: "闭嘴",
  face_centred: "人脸居中",
  eye_line: "双眼高度",
  head_top: "头顶位置",
  face_width: "人脸宽度",
  placement: "头部比例",
  head_in_frame: "头顶完整",
  body_in_frame: "肩部完整",
  shoulders_level: "双肩水平",
  ears_visible: "露出双耳",
  eyebrows_visible: "露出眉毛",
  headwear: "未戴帽子",
  illumination_balance: "光线均匀",
  face_brightness: "面部亮度",
  overexposure: "过曝",
  sharpness: "清晰度",
  glasses_tint: "眼镜无色",
  glasses_glare: "眼镜反光",
  colour_photo: "彩色照片",
  clothing_contrast: "服装与背景区分",
  background_colour: "背景颜色",
  background_uniformity: "背景均匀",
  background_residue: "无背景残留",
  recapture: "非翻拍",
  beautification: "未美颜",
};

let reasonsCache = null;

async function reasons() {
  if (!reasonsCache) reasonsCache = (await get("/reviews/reasons")).reasons;
  return reasonsCache;
}

function loadImage(url, alt) {
  const img = h("img.photo", { alt });
  const done = new Promise((resolve) => {
    img.addEventListener("load", () => resolve(true), { once: true });
    img.addEventListener("error", () => resolve(false), { once: true });
  });
  img.src = url;
  return { img, done };
}

export function reviewPage(root, ctx) {
  const state = { current: null, busy: false, mode: "view", reason: null, skipped: new Set(), alive: true, poll: 0 };
  const status = h("p.status", { role: "status", "aria-live": "polite" });
  const caseBox = h("section.case");
  const rejectBox = h("section.reject", { hidden: true });
  const noteInput = h("textarea", { maxlength: "400", rows: "3", placeholder: "补充说明（可选，学生可见）" });
  const reasonList = h("ol.reasons");
  const help = h(
    "div.help",
    { hidden: true, role: "dialog", "aria-label": "快捷键" },
    h("h3", "快捷键"),
    h(
      "dl",
      [
        ["A / Enter", "通过"],
        ["R", "不通过：1-9、0 选择原因，再输入说明，Enter 确认，Esc 取消"],
        ["S / →", "跳过（放回队列）"],
        ["N", "刷新队列"],
        ["?", "显示 / 隐藏本帮助"],
      ].map(([key, what]) => [h("dt", h("kbd", key)), h("dd", what)]),
    ),
  );
  // The decisions: disabled while no case is shown (the keys are no-ops then too).
  const decisions = [
    h("button.approve", { type: "button", disabled: true, on: { click: () => approve() } }, "通过 (A)"),
    h("button.reject", { type: "button", disabled: true, on: { click: () => openReject() } }, "不通过 (R)"),
    h("button.skip", { type: "button", disabled: true, on: { click: () => skip() } }, "跳过 (S)"),
  ];
  const buttons = h(
    "div.actions",
    ...decisions,
    h("button", { type: "button", on: { click: () => toggleHelp() } }, "快捷键 (?)"),
  );
  append(
    rejectBox,
    h("h3", "不通过原因"),
    reasonList,
    noteInput,
    h(
      "div.actions",
      h("button.reject", { type: "button", on: { click: () => confirmReject() } }, "确认不通过 (Enter)"),
      h("button", { type: "button", on: { click: () => closeReject() } }, "取消 (Esc)"),
    ),
  );
  noteInput.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      event.stopPropagation();
      confirmReject();
    } else if (event.key === "Escape") {
      event.preventDefault();
      event.stopPropagation();
      closeReject();
    }
  });
  replace(root, h("h2", "照片审核"), status, caseBox, buttons, rejectBox, help);
  root.dataset.page = "review";

  function say(text, kind = "info") {
    status.className = `status ${kind}`;
    status.textContent = text;
  }

  const BAND_LABELS = {
    clear_pass: "明显高于及格线",
    borderline: "临界分数，请重点核对",
    clear_fail: "明显低于及格线",
  };

  // match.scored.v1 `flags` (docs/matching.md): what matching could not be sure of, for the reviewer.
  const MATCH_FLAG_LABELS = {
    admission_photo_similar: "与录取照片人脸几乎相同但像素不同（可能是录取照片修改后重新提交），请核对是否为本人近期照片",
  };

  function render(item, images) {
    const match = item.match || {};
    const photo = item.submitted_photo;
    const student = item.student || {};
    const score = typeof match.score === "number" ? match.score.toFixed(1) : "—";
    // Where the score sits against the pass mark (match.scored.v1 `band`): look hardest at borderline passes.
    const band = BAND_LABELS[match.band] || "";
    const measures = (photo && photo.measures) || [];
    const flagged = measures.filter((m) => m.advisory && !m.passed);
    replace(
      caseBox,
      h(
        "div.case-head",
        h("span.name", student.name || "（无姓名）"),
        h("span", `学号 ${student.student_number || "—"}`),
        h("span", `学校 ${item.school_code || "—"}`),
        h("span", student.class_name || ""),
        h("span", `更新于 ${fmtTime(item.updated_at)}`),
      ),
      h(
        "div.photos",
        h("figure", images.standard, h("figcaption", "标准化照片")),
        h("figure", images.admission, h("figcaption", "录取照片")),
        h(
          "aside.report",
          h(
            "div.score",
            { dataset: { passed: String(Boolean(match.passed)), band: match.band || "" } },
            h("span", "比对分数"),
            h("strong", score),
            band ? h("span.band", band) : null,
          ),
          (match.flags || []).length
            ? h(
                "p.flags.match-flags",
                { dataset: { flags: match.flags.join(" ") } },
                `需人工核对：${match.flags.map((f) => MATCH_FLAG_LABELS[f] || f).join("、")}`,
              )
            : null,
          h("h4", "质量检测"),
          // Advisory failures (imaging's `advisory`: a residue, a recapture, a smile) did not refuse the
          // photo: they are why it is here to be looked at. Shown first, marked 「需人工核对」.
          flagged.length
            ? h("p.flags", { dataset: { flags: flagged.map((m) => m.code).join(" ") } }, `需人工核对：${flagged.map((m) => MEASURE_LABELS[m.code] || m.code).join("、")}`)
            : null,
          measures.length
            ? h(
                "ul.measures",
                measures.map((m) =>
                  h(
                    `li.${m.passed ? "ok" : m.advisory ? "flag" : "bad"}`,
                    { title: m.message || m.threshold || "" },
                    `${MEASURE_LABELS[m.code] || m.code}：${typeof m.score === "number" ? m.score.toFixed(0) : "—"}`,
                    m.passed ? " ✓" : m.advisory ? " ⚑ 需人工核对" : " ✗",
                  ),
                ),
              )
            : h("p.empty", "无检测数据"),
          photo && photo.reasons && photo.reasons.length ? h("p.bad", photo.reasons.join("；")) : null,
        ),
      ),
    );
  }

  async function loadNext() {
    root.dataset.ready = "0";
    let data;
    try {
      const skip = [...state.skipped].slice(-100);
      data = await post("/reviews/next", skip.length ? { skip } : {});
    } catch (err) {
      say(err.message, "error");
      return false;
    }
    if (!state.alive) return false;
    const item = data.case;
    state.current = item;
    for (const button of decisions) button.disabled = !item;
    if (!item) {
      delete root.dataset.caseId;
      replace(caseBox, h("p.empty", "暂无待审核的照片，每 10 秒自动刷新（或按 N）。"));
      root.dataset.ready = "1";
      clearTimeout(state.poll);
      state.poll = setTimeout(() => {
        if (state.alive && !state.current && !state.busy) loadNext();
      }, 10000);
      return true;
    }
    const standard = item.submitted_photo
      ? loadImage(item.submitted_photo.image_url, "标准化照片")
      : { img: h("p.empty", "无提交照片"), done: Promise.resolve(false) };
    const admission = loadImage(item.admission_photo_url, "录取照片");
    render(item, { standard: standard.img, admission: admission.img });
    await Promise.all([standard.done, admission.done]);
    if (!state.alive || state.current !== item) return false;
    root.dataset.caseId = item.application_id;
    root.dataset.ready = "1";
    return true;
  }

  async function decide(decision, reasonCode, note) {
    if (state.busy || !state.current) return;
    state.busy = true;
    const item = state.current;
    performance.clearMarks("console.decision");
    performance.mark("console.decision");
    try {
      const result = await post(`/reviews/${seg(item.application_id)}/decision`, {
        decision,
        reason_code: reasonCode,
        note: note || "",
      });
      const who = (item.student && item.student.student_number) || item.application_id;
      const detail = result.review.reason ? `：${result.review.reason}` : "";
      say(`${who} ${decision === "approved" ? "已通过" : "已退回"}${detail}`, decision === "approved" ? "ok" : "warn");
      closeReject();
      if (await loadNext()) {
        if (performance.getEntriesByType("measure").length > 5000) performance.clearMeasures();
        performance.measure("console.decision-to-next-case", "console.decision");
      }
    } catch (err) {
      say(err instanceof ApiError ? `操作失败：${err.message}` : String(err), "error");
      if (err instanceof ApiError && (err.code === "illegal_transition" || err.code === "review_lease_held")) {
        await loadNext();
      }
    } finally {
      state.busy = false;
    }
  }

  function approve() {
    return decide("approved", null, "");
  }

  async function openReject() {
    if (!state.current || state.busy) return;
    const list = await reasons();
    state.mode = "reject";
    state.reason = null;
    noteInput.value = "";
    replace(
      reasonList,
      list.map((reason, index) =>
        h(
          "li",
          { dataset: { code: reason.code } },
          h("button", { type: "button", on: { click: () => pickReason(index) } }, h("kbd", String((index + 1) % 10)), ` ${reason.label}`),
        ),
      ),
    );
    rejectBox.hidden = false;
    buttons.hidden = true;
  }

  async function pickReason(index) {
    const list = await reasons();
    if (index < 0 || index >= list.length) return;
    state.reason = list[index].code;
    for (const li of reasonList.children) li.classList.toggle("picked", li.dataset.code === state.reason);
    noteInput.focus();
  }

  function confirmReject() {
    if (!state.reason) {
      say("请先选择不通过原因（按 1-9 或 0）", "warn");
      return;
    }
    return decide("rejected", state.reason, noteInput.value);
  }

  function closeReject() {
    state.mode = "view";
    state.reason = null;
    rejectBox.hidden = true;
    buttons.hidden = false;
    if (document.activeElement === noteInput) noteInput.blur();
  }

  async function skip() {
    if (!state.current || state.busy) return;
    state.busy = true;
    const item = state.current;
    try {
      await post(`/reviews/${seg(item.application_id)}/release`);
      state.skipped.add(item.application_id);
      say("已跳过，放回队列", "info");
      await loadNext();
    } catch (err) {
      say(err.message, "error");
    } finally {
      state.busy = false;
    }
  }

  function toggleHelp() {
    help.hidden = !help.hidden;
  }

  function onKey(event) {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    const key = event.key;
    if (key === "?") {
      event.preventDefault();
      toggleHelp();
      return;
    }
    if (!help.hidden && key === "Escape") {
      help.hidden = true;
      return;
    }
    if (state.mode === "reject") {
      if (/^[0-9]$/.test(key)) {
        event.preventDefault();
        pickReason((Number(key) + 9) % 10);
      } else if (key === "Enter") {
        event.preventDefault();
        confirmReject();
      } else if (key === "Escape") {
        event.preventDefault();
        closeReject();
      }
      return;
    }
    const lower = key.toLowerCase();
    if (lower === "a" || key === "Enter") {
      event.preventDefault();
      approve();
    } else if (lower === "r") {
      event.preventDefault();
      openReject();
    } else if (lower === "s" || key === "ArrowRight") {
      event.preventDefault();
      skip();
    } else if (lower === "n") {
      event.preventDefault();
      state.skipped.clear();
      if (!state.busy) loadNext();
    }
  }

  loadNext();
  return {
    onKey,
    destroy() {
      // Leaving the page gives the case back at once instead of holding it until the lease lapses.
      state.alive = false;
      clearTimeout(state.poll);
      if (state.current) post(`/reviews/${seg(state.current.application_id)}/release`).catch(() => {});
    },
  };
}
