// The console's other pages: dashboard, exceptions, students, schools, delivery, dead letters, audit.
// Each page is page(root, ctx) -> {onKey?, destroy?}; all data is rendered as text (dom.js).

import { ApiError, BASE, get, newKey, post, put, query, seg } from "./api.js";
import { barList, colour, timeChart } from "./charts.js";
import { download } from "./downloads.js";
import { append, clear, field, fmtFen, fmtTime, h, jsonBlock, replace, table } from "./dom.js";

export const STATE_LABELS = {
  code_submitted: "已提交采集码",
  code_rejected: "采集码未通过",
  code_verified: "采集码已验证",
  confirmed: "已确认信息",
  paid: "已支付",
  submitted: "已提交照片",
  match_failed: "比对未通过",
  registrar_review: "学籍处复核",
  in_review: "待审核",
  approved: "审核通过",
  rejected: "审核未通过",
};

const stateLabel = (state) => STATE_LABELS[state] || state;

function flash(box, text, kind = "info") {
  box.className = `status ${kind}`;
  box.textContent = text;
}

function errorText(err) {
  return err instanceof ApiError ? `${err.message}（${err.code}）` : String(err);
}

/** Run an action with its button disabled; its outcome shown in `box`. */
async function act(button, box, action, done) {
  button.disabled = true;
  try {
    const result = await action();
    if (done) flash(box, done(result), "ok");
    return result;
  } catch (err) {
    flash(box, `操作失败：${errorText(err)}`, "error");
    return undefined;
  } finally {
    button.disabled = false;
  }
}

// --- 数据看板 ---------------------------------------------------------------------------------

/** A table whose rows are kept by key and updated in place (no reflow while figures change). */
function liveTable(headers) {
  const body = h("tbody");
  const element = h("table", h("thead", h("tr", headers.map((name) => h("th", name)))), body);
  const rows = new Map();
  function update(items) {
    const keep = new Set();
    items.forEach(({ key, cells }, i) => {
      keep.add(key);
      let row = rows.get(key);
      if (!row) {
        const tds = cells.map(() => h("td"));
        row = { tr: h("tr", { dataset: { key } }, tds), tds };
        rows.set(key, row);
      }
      cells.forEach((cell, j) => {
        if (row.tds[j].textContent !== cell) row.tds[j].textContent = cell;
      });
      if (body.children[i] !== row.tr) body.insertBefore(row.tr, body.children[i] || null);
    });
    for (const [key, row] of rows) {
      if (!keep.has(key)) {
        row.tr.remove();
        rows.delete(key);
      }
    }
  }
  return { element, update };
}

export function dashboardPage(root) {
  const status = h("p.status", { role: "status" });
  const charts = {
    throughput: timeChart("throughput", "每分钟处理量（次/分钟）：照片标准化、比对、审核决定"),
    depth: timeChart("queue-depth", "队列深度（条，近一小时）"),
    publish: timeChart("publish-rate", "发布速率（条/秒）"),
    deliver: timeChart("deliver-rate", "投递速率（条/秒）"),
    ack: timeChart("ack-rate", "确认速率（条/秒）"),
    outbox: timeChart("outbox", "发件箱积压（待发布事件，本网关进程采样）"),
  };
  const funnelBox = h("div.funnels");
  const funnels = new Map(); // school -> {element, update}
  const dead = barList("dead-letters", { empty: "没有死信队列" });
  const deadTotal = h("p", { dataset: { deadLetters: "0" } }, "死信消息 0 条");
  const queueWarning = h("p.warn", { hidden: true });
  const queueTable = liveTable(["队列", "待投递", "未确认", "消费者", "发布/秒", "投递/秒", "确认/秒"]);
  const outboxLine = h("p", "—");
  const failures = h("div");
  replace(
    root,
    h("h2", "数据看板"),
    h("p.hint", "每 5 秒自动刷新；曲线为近一小时，每分钟一个点（队列数据来自 RabbitMQ 管理接口的历史采样）"),
    status,
    h("div.chart-grid", Object.values(charts).map((c) => c.element)),
    h("h3", "申请漏斗（按学校）"),
    funnelBox,
    h("h3", "死信（按队列）"),
    deadTotal,
    dead.element,
    h("h3", "消息队列（当前）"),
    queueWarning,
    queueTable.element,
    h("h3", "发件箱（outbox）"),
    outboxLine,
    h("h3", "通知失败"),
    failures,
  );
  root.dataset.page = "dashboard";
  let alive = true;

  function drawQueues(history) {
    if (!history || !history.timestamps.length) return;
    const xs = history.timestamps;
    const pick = (field) => history.queues.map((q) => ({ label: q.name, values: q[field] }));
    charts.depth.update(xs, pick("depth"));
    charts.publish.update(xs, pick("publish"));
    charts.deliver.update(xs, pick("deliver"));
    charts.ack.update(xs, pick("ack"));
  }

  function drawFunnel(rows) {
    const bySchool = new Map();
    for (const row of rows) {
      if (!bySchool.has(row.school_code)) bySchool.set(row.school_code, []);
      bySchool.get(row.school_code).push(row);
    }
    for (const [school, entry] of funnels) {
      if (!bySchool.has(school)) {
        entry.element.remove();
        funnels.delete(school);
      }
    }
    for (const [school, items] of [...bySchool].sort()) {
      let entry = funnels.get(school);
      if (!entry) {
        const bars = barList(`funnel-${school}`);
        entry = { bars, element: h("section.funnel", { dataset: { school } }, h("h4", `学校 ${school}`), bars.element) };
        funnels.set(school, entry);
        funnelBox.append(entry.element);
      }
      const order = Object.keys(STATE_LABELS);
      const position = (state) => (order.includes(state) ? order.indexOf(state) : order.length);
      entry.bars.update(
        items
          .slice()
          .sort((a, b) => position(a.state) - position(b.state))
          .map((row) => ({
            key: row.state,
            label: stateLabel(row.state),
            value: row.count,
            colour: colour(position(row.state)),
            data: { funnel: `${row.school_code}:${row.state}` },
          })),
      );
    }
  }

  async function refresh() {
    let data;
    try {
      data = await get("/dashboard");
    } catch (err) {
      flash(status, `看板暂不可用：${errorText(err)}`, "error");
      return;
    }
    if (!alive) return;
    flash(status, `更新于 ${fmtTime(data.generated_at)}`);
    const queues = data.queues || { items: [] };
    const outbox = data.outbox || {};
    const throughput = data.throughput;
    if (throughput && throughput.timestamps.length) {
      charts.throughput.update(throughput.timestamps, [
        { label: "照片标准化", values: throughput.standardised },
        { label: "人脸比对", values: throughput.compared },
        { label: "审核决定", values: throughput.decided },
      ]);
    }
    drawQueues(data.history);
    const samples = data.outbox_history || { timestamps: [] };
    if (samples.timestamps.length) {
      charts.outbox.update(samples.timestamps, [{ label: "待发布事件", values: samples.pending_events }]);
    }
    drawFunnel(data.funnel || []);
    const deadLetters = data.dead_letters || {};
    deadTotal.dataset.deadLetters = String(deadLetters.count ?? 0);
    deadTotal.textContent = `死信消息 ${deadLetters.count ?? 0} 条`;
    dead.update(
      (deadLetters.by_queue || []).map((q) => ({ key: q.queue, label: q.queue, value: q.messages, colour: "#b3261e" })),
    );
    queueWarning.hidden = Boolean(queues.available);
    queueWarning.textContent = queues.available ? "" : `队列数据不可用：${queues.error || "未知原因"}`;
    queueTable.update(
      (queues.items || []).map((q) => ({
        key: q.name,
        cells: [
          q.name,
          String(q.messages_ready),
          String(q.messages_unacked),
          String(q.consumers),
          Number(q.publish_rate).toFixed(1),
          Number(q.deliver_rate).toFixed(1),
          Number(q.ack_rate).toFixed(1),
        ],
      })),
    );
    outboxLine.textContent =
      `待发布事件 ${outbox.pending_events ?? "—"}，涉及 ${outbox.aggregates_pending ?? "—"} 个申请，` +
      `最久 ${outbox.oldest_age_s == null ? "—" : `${Number(outbox.oldest_age_s).toFixed(1)} 秒`}`;
    replace(
      failures,
      table(
        ["错误码", "次数", "最近"],
        (data.notify_failures || []).map((f) => [f.code, String(f.count), fmtTime(f.last_at)]),
      ),
    );
    root.dataset.refreshedAt = data.generated_at || "";
  }

  refresh();
  const timer = setInterval(refresh, 5000);
  return {
    destroy() {
      alive = false;
      clearInterval(timer);
      for (const chart of Object.values(charts)) chart.destroy();
    },
  };
}

// --- 异常队列 ---------------------------------------------------------------------------------

const EXCEPTION_KINDS = {
  registrar_review: "学籍处复核",
  low_score: "比对分数低",
  quality_rejected: "质量检测未通过",
};

export function exceptionsPage(root, ctx) {
  const status = h("p.status", { role: "status" });
  const kind = h(
    "select",
    h("option", { value: "" }, "全部"),
    Object.entries(EXCEPTION_KINDS).map(([value, label]) => h("option", { value }, label)),
  );
  const list = h("div.list");
  kind.addEventListener("change", load);
  replace(root, h("h2", "异常队列"), field("类型", kind), status, list);
  root.dataset.page = "exceptions";

  async function load() {
    let data;
    try {
      data = await get(`/exceptions${query({ kind: kind.value })}`);
    } catch (err) {
      flash(status, errorText(err), "error");
      return;
    }
    flash(status, `共 ${data.cases.length} 件`);
    replace(list, data.cases.length ? data.cases.map(renderCase) : h("p.empty", "没有异常案件"));
  }

  function renderCase(item) {
    const box = h("p.status");
    const card = h(
      "article.card",
      { dataset: { applicationId: item.application_id } },
      h(
        "header",
        h("strong", EXCEPTION_KINDS[item.kind] || item.kind),
        ` ${item.student_id || "—"} · ${stateLabel(item.state)} · 比对分数 ${
          item.match && typeof item.match.score === "number" ? item.match.score.toFixed(1) : "—"
        } · ${fmtTime(item.updated_at)}`,
      ),
      item.last_failure ? h("p.warn", item.last_failure.message || item.last_failure.code || "") : null,
      item.rejected_photos.map((photo) => renderPhoto(item, photo, box)),
      item.kind === "registrar_review" ? registrarDecision(item, box) : null,
      box,
    );
    return card;
  }

  function renderPhoto(item, photo, box) {
    const reason = h("input", { type: "text", maxlength: "400", placeholder: "放行理由（必填）" });
    const button = h("button", { type: "button" }, "人工放行");
    button.addEventListener("click", () => {
      if (reason.value.trim().length < 2) {
        flash(box, "请填写放行理由", "warn");
        return;
      }
      act(
        button,
        box,
        () => post(`/exceptions/${seg(item.application_id)}/photos/${seg(photo.photo_id)}/override`, { reason: reason.value }),
        () => "已放行，学生可提交该照片",
      );
    });
    const canOverride = ctx.can("override");
    return h(
      "div.photo-row",
      h("img.thumb", { src: photo.image_url, alt: "被拒照片", loading: "lazy" }),
      h("div", h("p", photo.reasons.join("；") || "—"), canOverride ? h("div.inline", reason, button) : null),
    );
  }

  function registrarDecision(item, box) {
    if (!ctx.can("review")) return null;
    const reasonSelect = h("select");
    get("/reviews/reasons").then((data) =>
      append(reasonSelect, data.reasons.map((r) => h("option", { value: r.code }, r.label))),
    );
    const note = h("input", { type: "text", maxlength: "400", placeholder: "说明（可选）" });
    const approve = h("button.approve", { type: "button" }, "通过");
    const reject = h("button.reject", { type: "button" }, "不通过");
    const decide = (button, decision) =>
      act(
        button,
        box,
        () =>
          post(`/reviews/${seg(item.application_id)}/decision`, {
            decision,
            reason_code: decision === "rejected" ? reasonSelect.value : null,
            note: note.value,
          }),
        (r) => `${decision === "approved" ? "已通过" : "已退回"}${r.review.reason ? `：${r.review.reason}` : ""}`,
      );
    approve.addEventListener("click", () => decide(approve, "approved"));
    reject.addEventListener("click", () => decide(reject, "rejected"));
    return h("div.inline", approve, reasonSelect, note, reject);
  }

  load();
  return {};
}

// --- 学生查询 ---------------------------------------------------------------------------------

export function studentsPage(root, ctx) {
  const status = h("p.status", { role: "status" });
  const q = h("input", { type: "search", maxlength: "64", placeholder: "学号（精确）或姓名（包含）" });
  const results = h("div.list");
  const detail = h("div.detail");
  const form = h("form.inline", q, h("button", { type: "submit" }, "查询"));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    search();
  });
  replace(root, h("h2", "学生查询"), form, status, results, detail);
  root.dataset.page = "students";

  async function search() {
    clear(detail);
    let data;
    try {
      data = await get(`/students${query({ q: q.value.trim() })}`);
    } catch (err) {
      flash(status, errorText(err), "error");
      return;
    }
    flash(status, `找到 ${data.students.length} 人`);
    replace(
      results,
      table(
        ["姓名", "学号", "学校", "班级", "申请"],
        data.students.map((s) => [
          s.name,
          s.student_number,
          s.school_code,
          s.class_name || "—",
          s.applications.map((a) =>
            h("button.link", { type: "button", on: { click: () => show(a.application_id) } }, `${stateLabel(a.state)} ${fmtTime(a.updated_at)}`),
          ),
        ]),
        { empty: "没有找到学生" },
      ),
    );
  }

  async function show(applicationId) {
    let data;
    try {
      data = await get(`/applications/${seg(applicationId)}`);
    } catch (err) {
      flash(status, errorText(err), "error");
      return;
    }
    const app = data.application;
    const box = h("p.status");
    const reviews = (app.reviews || []).map((r) => [
      fmtTime(r.decided_at),
      r.decision === "approved" ? "通过" : "不通过",
      r.reason || "—",
      r.operator_id || "—",
    ]);
    const actions = h("div.actions");
    if (ctx.can("students.write")) {
      const unbind = h("button", { type: "button" }, "解除微信绑定");
      unbind.addEventListener("click", () => {
        if (!window.confirm("确定解除该学生的微信绑定？")) return;
        act(unbind, box, () => post(`/applications/${seg(applicationId)}/unbind`), () => "已解除绑定");
      });
      const reason = h("input", { type: "text", maxlength: "80", placeholder: "退款原因（付款人可见）" });
      const amount = h("input", { type: "number", min: "1", step: "1", placeholder: "金额（分，可空=全额）" });
      const refund = h("button", { type: "button" }, "退款");
      // One Idempotency-Key per refund intent (reason and amount): a retried request refunds once.
      let refundIntent = null;
      refund.addEventListener("click", () => {
        if (reason.value.trim().length < 2) {
          flash(box, "请填写退款原因", "warn");
          return;
        }
        if (!window.confirm("确定退款？")) return;
        const body = { reason: reason.value.trim() };
        if (amount.value) body.amount_fen = Number(amount.value);
        const intent = JSON.stringify(body);
        if (!refundIntent || refundIntent.intent !== intent) refundIntent = { intent, key: newKey() };
        const headers = { "Idempotency-Key": refundIntent.key };
        act(refund, box, () => post(`/applications/${seg(applicationId)}/refund`, body, headers), (r) => `退款已提交：${r.refund.status || ""}`);
      });
      append(actions, unbind, h("span.sep"), reason, amount, refund);
    }
    if (ctx.role === "admin") {
      const why = h("input", { type: "text", maxlength: "200", placeholder: "删除理由（如工单号，勿含个人信息）" });
      const erase = h("button.reject", { type: "button" }, "删除个人信息");
      erase.addEventListener("click", () => {
        if (why.value.trim().length < 4) {
          flash(box, "请填写删除理由", "warn");
          return;
        }
        if (!window.confirm("删除后不可恢复，确定？")) return;
        act(erase, box, () => post(`/applications/${seg(applicationId)}/erase`, { reason: why.value.trim() }), (r) => `已删除个人信息（记录 ${r.erasure_ref}）`);
      });
      append(actions, h("span.sep"), why, erase);
    }
    replace(
      detail,
      h("h3", `申请 ${app._id}`),
      h("p", `状态：${stateLabel(app.state)} · 学校 ${app.school_code || "—"} · 订单 ${app.order ? `${app.order.status} ${fmtFen(app.order.amount_fen)}` : "—"}`),
      actions,
      box,
      h("h4", "审核记录"),
      table(["时间", "结论", "原因", "审核员"], reviews),
      h("h4", "通知"),
      table(
        ["时间", "类型", "结果"],
        (data.notifications || []).map((n) => [fmtTime(n.sent_at || n.created_at), n.kind || n.template || n.type || "—", n.status || "—"]),
      ),
      h("details", h("summary", "完整记录（JSON）"), jsonBlock(data)),
    );
  }

  return {};
}

// --- 学校配置：表单（每项有说明，页面和服务器都校验；保存前显示改动） -----------------------------------

// The form's fields: path in the configuration, label, help. Limits (lengths, ranges, choices) come from
// the server's JSON schema (GET /school-config/schema), so the page checks what the server checks.
const SETTINGS_FIELDS = [
  { path: "name", label: "学校名称", help: "学生在小程序里看到的学校名称。" },
  { path: "fee_fen", label: "采集费用（分）", help: "学生支付的金额，单位为分：3500 即 35.00 元；0 为免费。", integer: true },
  { path: "allow_onsite_attendees", label: "允许参加过现场拍摄的学生在线采集", help: "关闭时，名单上标为现场拍摄的学生不能在线采集。", kind: "checkbox" },
  { path: "onsite_extra_fee_fen", label: "现场拍摄学生的额外费用（分）", help: "上一项允许时，这些学生另付的人工审核费。", integer: true },
  { path: "pass_mark", label: "人脸比对通过分数", help: "0–100；低于此分数的照片需要换一张或转学籍部门复核。", step: "0.1" },
  { path: "standardisations_per_day", label: "每日照片处理次数", help: "每个学生 24 小时内最多标准化几张照片。", integer: true },
  { path: "free_resubmissions", label: "审核未通过后免费重新提交次数", help: "审核退回后学生不需再付费即可重新提交的次数。", integer: true },
  { path: "chsi_file_name", label: "学信网上传包文件命名", help: "必须包含 {student_number}，以 .jpg 结尾，例如 {student_number}.jpg；文字只能用字母、数字、_ 和 -。", check: checkChsiName },
  { path: "print_size", label: "打印尺寸", help: "打印版照片的尺寸。", kind: "select" },
  { path: "capture_sources", label: "允许的照片来源", help: "至少选一项；很多省份只允许现场拍照，不允许从相册选择。", kind: "checkboxes", labels: { camera: "拍照", album: "相册" } },
  { path: "policy_version", label: "协议版本号", help: "学生同意协议时记录的版本；留空则按协议文本自动生成。" },
  { path: "support.phone", label: "客服电话", help: "小程序里显示的联系电话。" },
  { path: "support.hours", label: "客服时间", help: "例如 工作日 9:00–17:00。" },
  { path: "notice", label: "温馨提示", help: "学生开始采集前阅读的说明（最多 5000 字）。", kind: "textarea" },
];

function checkChsiName(value) {
  if (!value.endsWith(".jpg")) return "必须以 .jpg 结尾";
  if (!value.includes("{student_number}")) return "必须包含 {student_number}（保证每个文件名不同）";
  return "";
}

function getPath(object, path) {
  return path.split(".").reduce((value, key) => (value == null ? undefined : value[key]), object);
}

function setPath(object, path, value) {
  const keys = path.split(".");
  let target = object;
  for (const key of keys.slice(0, -1)) {
    if (target[key] == null || typeof target[key] !== "object") target[key] = {};
    target = target[key];
  }
  target[keys[keys.length - 1]] = value;
}

/** The JSON schema of one field, following $ref into $defs. */
function fieldSchema(schema, path) {
  let node = schema;
  for (const key of path.split(".")) {
    if (node && node.$ref) node = schema.$defs[node.$ref.split("/").pop()];
    node = node && node.properties ? node.properties[key] : undefined;
  }
  if (node && node.$ref) node = schema.$defs[node.$ref.split("/").pop()];
  if (node && node.anyOf) node = node.anyOf.find((n) => n.type !== "null") || node;
  return node || {};
}

const shown = (value) => (value === undefined ? "（未设置）" : typeof value === "string" ? value : JSON.stringify(value));

/** The settings form of one school: returns the element; `onSaved(config)` after a save; `notice` is shown
 *  in its status line (the page re-renders the form after a save, so the confirmation must outlive it). */
function settingsForm(code, config, schema, canEdit, onSaved, notice = "") {
  const inputs = new Map(); // path -> {field, read(), error}
  const box = h("p.status");
  if (notice) flash(box, notice, "ok");
  const diffBox = h("div.diff");
  const rows = SETTINGS_FIELDS.map((f) => {
    const rule = fieldSchema(schema, f.path);
    const value = getPath(config, f.path);
    const error = h("span.field-error", { role: "alert" });
    let control;
    let read;
    if (f.kind === "checkbox") {
      control = h("input", { type: "checkbox", name: f.path, checked: Boolean(value), disabled: !canEdit });
      read = () => control.checked;
    } else if (f.kind === "select") {
      control = h("select", { name: f.path, disabled: !canEdit }, (rule.enum || [value]).map((v) => h("option", { value: v, selected: v === value }, v)));
      read = () => control.value;
    } else if (f.kind === "checkboxes") {
      const choices = (rule.items && rule.items.enum) || Object.keys(f.labels);
      const boxes = choices.map((choice) => h("input", { type: "checkbox", value: choice, name: f.path, checked: (value || []).includes(choice), disabled: !canEdit }));
      control = h("span.choices", boxes.map((b, i) => h("label", b, f.labels[choices[i]] || choices[i])));
      read = () => boxes.filter((b) => b.checked).map((b) => b.value);
    } else if (f.kind === "textarea") {
      control = h("textarea", { name: f.path, rows: "4", maxlength: rule.maxLength ? String(rule.maxLength) : null, readonly: canEdit ? null : "readonly" });
      control.value = value ?? "";
      read = () => control.value;
    } else {
      const numeric = rule.type === "integer" || rule.type === "number";
      control = h("input", {
        type: numeric ? "number" : "text",
        name: f.path,
        min: rule.minimum ?? null,
        max: rule.maximum ?? null,
        step: numeric ? f.step || "1" : null,
        maxlength: rule.maxLength ? String(rule.maxLength) : null,
        readonly: canEdit ? null : "readonly",
      });
      control.value = value ?? "";
      read = () => (numeric ? (control.value === "" ? NaN : Number(control.value)) : control.value);
    }
    const check = () => {
      const v = read();
      let message = "";
      if (typeof v === "number") {
        if (Number.isNaN(v)) message = "请填写数字";
        else if (f.integer && !Number.isInteger(v)) message = "请填写整数";
        else if (rule.minimum !== undefined && v < rule.minimum) message = `不能小于 ${rule.minimum}`;
        else if (rule.maximum !== undefined && v > rule.maximum) message = `不能大于 ${rule.maximum}`;
      } else if (typeof v === "string") {
        if (rule.maxLength !== undefined && v.length > rule.maxLength) message = `最多 ${rule.maxLength} 个字符`;
        else if (rule.minLength !== undefined && v.length < rule.minLength) message = "不能为空";
        else if (f.check) message = f.check(v);
      } else if (Array.isArray(v) && rule.minItems && v.length < rule.minItems) {
        message = "至少选一项";
      }
      error.textContent = message;
      row.classList.toggle("invalid", Boolean(message));
      return !message;
    };
    // A group of checkboxes has its own labels (a label may not hold another).
    const holder = f.kind === "checkboxes" ? "div.control" : "label";
    const row = h("div.setting", { dataset: { path: f.path } }, h(holder, h("span.label", f.label), control), h("p.help", f.help), error);
    control.addEventListener("input", check);
    control.addEventListener("change", check);
    inputs.set(f.path, { read, check, error, row });
    return row;
  });

  const review = h("button", { type: "button", hidden: !canEdit }, "检查改动");
  review.addEventListener("click", () => {
    clear(diffBox);
    const valid = [...inputs.values()].map((i) => i.check()).every(Boolean);
    if (!valid) {
      flash(box, "有填写不正确的项，请按提示修改", "error");
      return;
    }
    const next = JSON.parse(JSON.stringify(config));
    const changes = [];
    for (const [path, input] of inputs) {
      const before = getPath(config, path);
      const after = input.read();
      if (JSON.stringify(before ?? "") !== JSON.stringify(after ?? "")) {
        changes.push([path, before, after]);
        setPath(next, path, after);
      }
    }
    if (!changes.length) {
      flash(box, "没有改动", "info");
      return;
    }
    flash(box, `共 ${changes.length} 项改动，请确认`, "warn");
    const labels = Object.fromEntries(SETTINGS_FIELDS.map((f) => [f.path, f.label]));
    const confirm = h("button.approve", { type: "button" }, "确认保存");
    const cancel = h("button", { type: "button" }, "取消");
    cancel.addEventListener("click", () => {
      clear(diffBox);
      flash(box, "");
    });
    confirm.addEventListener("click", async () => {
      confirm.disabled = true;
      try {
        const saved = await put(`/schools/${seg(code)}`, next);
        clear(diffBox);
        flash(box, "配置已保存", "ok");
        onSaved(saved, "配置已保存");
      } catch (err) {
        confirm.disabled = false;
        const fields = (err.details && err.details.fields) || [];
        for (const problem of fields) {
          const input = inputs.get(String(problem.field));
          if (input) {
            input.error.textContent = `服务器：${problem.error}`;
            input.row.classList.add("invalid");
          }
        }
        flash(box, `服务器拒绝保存：${errorText(err)}`, "error");
      }
    });
    replace(
      diffBox,
      table(["项目", "原值", "新值"], changes.map(([path, before, after]) => [labels[path] || path, shown(before), shown(after)])),
      h("div.actions", confirm, cancel),
    );
  });
  return h("section.settings", { dataset: { school: code } }, h("h3", "学校配置"), rows, h("div.actions", review), box, diffBox);
}

// --- 学校配置与名单导入 -------------------------------------------------------------------------

export function schoolsPage(root, ctx) {
  let schema = null;
  const status = h("p.status", { role: "status" });
  const picker = h("select");
  const detail = h("div.detail");
  picker.addEventListener("change", () => show(picker.value));
  replace(root, h("h2", "学校管理"), field("学校", picker), status, detail);
  root.dataset.page = "schools";

  async function load() {
    try {
      const data = await get("/schools");
      replace(picker, data.schools.map((s) => h("option", { value: s.school_code }, `${s.school_code} ${s.name}`)));
      if (data.schools.length) show(data.schools[0].school_code);
      else flash(status, "没有可管理的学校");
    } catch (err) {
      flash(status, errorText(err), "error");
    }
  }

  async function show(code, notice = "") {
    let config;
    try {
      config = await get(`/schools/${seg(code)}`);
    } catch (err) {
      flash(status, errorText(err), "error");
      return;
    }
    const box = h("p.status");
    if (!schema) {
      try {
        schema = (await get("/school-config/schema")).json_schema;
      } catch (err) {
        flash(status, errorText(err), "error");
        return;
      }
    }
    const form = settingsForm(code, config, schema, ctx.role === "admin", (_saved, done) => show(code, done), notice);
    const editor = h("textarea.config", { rows: "24", spellcheck: "false", readonly: ctx.role !== "admin" ? "readonly" : null });
    editor.value = JSON.stringify(config, null, 2);
    const save = h("button", { type: "button", hidden: ctx.role !== "admin" }, "保存配置");
    save.addEventListener("click", () => {
      let parsed;
      try {
        parsed = JSON.parse(editor.value);
      } catch (err) {
        flash(box, `JSON 格式错误：${err.message}`, "error");
        return;
      }
      act(save, box, () => put(`/schools/${seg(code)}`, parsed), () => "配置已保存");
    });
    // The whole configuration as JSON (lists, texts, templates the form leaves out): admins' advanced view.
    const parts = [form, h("details.advanced", { hidden: ctx.role !== "admin" }, h("summary", "高级：原始 JSON（全部配置项）"), editor, save, box)];
    if (ctx.can("roster")) parts.push(rosterForm(code));
    replace(detail, parts);
  }

  function rosterForm(code) {
    const roster = h("input", { type: "file", accept: ".csv,.xlsx", required: true });
    const photos = h("input", { type: "file", accept: ".zip" });
    const box = h("p.status");
    const report = h("div.report");
    const submit = h("button", { type: "submit" }, "导入");
    const form = h("form.upload", h("h3", "导入名单"), field("名单（CSV 或 XLSX）", roster), field("录取照片（zip，<学号>.jpg，可选）", photos), submit, box, report);
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      if (!roster.files.length) {
        flash(box, "请选择名单文件", "warn");
        return;
      }
      const body = new FormData();
      body.append("roster", roster.files[0]);
      if (photos.files.length) body.append("photos", photos.files[0]);
      const result = await act(submit, box, () => post(`/schools/${seg(code)}/roster`, body), (r) =>
        r.ok ? "导入完成" : "导入完成，但有被拒绝的行",
      );
      if (!result) return;
      const problems = (rows) => rows.map((p) => [String(p.row), p.student_number || "—", p.code, p.message]);
      replace(
        report,
        h("p", `共 ${result.rows} 行：新增 ${result.created}，更新 ${result.updated}，未变 ${result.unchanged}，照片 ${result.photos_stored} 张`),
        h("h4", "被拒绝的行"),
        table(["行", "学号", "错误码", "说明"], problems(result.rejected)),
        h("h4", "警告"),
        table(["行", "学号", "错误码", "说明"], problems(result.warnings)),
      );
    });
    return form;
  }

  load();
  return {};
}

// --- 交付（学信网上传包、打印、邮寄） ------------------------------------------------------------

export function deliveryPage(root, ctx) {
  // School staff download their school's files; making batches and marking them is support's.
  const canDeliver = ctx.can("delivery");
  const status = h("p.status", { role: "status" });
  const picker = h("select");
  const detail = h("div.detail");
  picker.addEventListener("change", () => show(picker.value));
  replace(root, h("h2", "交付"), field("学校", picker), status, detail);
  root.dataset.page = "delivery";

  async function load() {
    try {
      // School staff may not list schools (GET /schools is staff's): their own codes are in the session.
      const schools = canDeliver ? (await get("/schools")).schools : ctx.operator.schools.map((code) => ({ school_code: code, name: "" }));
      replace(picker, schools.map((s) => h("option", { value: s.school_code }, `${s.school_code} ${s.name}`)));
      if (schools.length) show(schools[0].school_code);
    } catch (err) {
      flash(status, errorText(err), "error");
    }
  }

  async function show(code, notice = "") {
    let data;
    try {
      data = await get(`/schools/${seg(code)}/delivery`);
    } catch (err) {
      flash(status, errorText(err), "error");
      clear(detail);
      return;
    }
    flash(status, "");
    const box = h("p.status.ok", notice);
    const create = h("button", { type: "button", disabled: !data.ready, hidden: !canDeliver }, "新建交付批次");
    create.addEventListener("click", () =>
      act(create, box, () => post(`/schools/${seg(code)}/delivery/batches`, {})).then(
        (b) => b && show(code, `已建批次 ${b.batch_id}（${b.count} 人）`),
      ),
    );
    const batchBox = h("div.batch");
    replace(
      detail,
      h("p", { dataset: { ready: String(data.ready) } }, `待交付（审核通过、未入批次）：${data.ready} 人`),
      create,
      box,
      h("h3", "批次"),
      table(
        ["批次", "状态", "创建", "创建人", "人数", "下载", "打印", "邮寄", ""],
        data.batches.map((b) => [
          b.batch_id,
          b.state === "closed" ? "已完成" : "进行中",
          fmtTime(b.created_at),
          b.created_by_email || b.created_by || "—",
          String(b.count),
          Object.entries(b.downloads || {})
            .map(([file, d]) => `${file} ×${d.count}`)
            .join("，") || "—",
          fmtTime(b.printed_at),
          fmtTime(b.mailed_at),
          h("button.link", { type: "button", on: { click: () => showBatch(code, b.batch_id, batchBox) } }, "查看"),
        ]),
        { empty: "还没有批次" },
      ),
      batchBox,
    );
  }

  async function showBatch(code, batchId, box, notice = "") {
    const path = `/schools/${seg(code)}/delivery/batches/${seg(batchId)}`;
    let batch;
    try {
      batch = await get(path);
    } catch (err) {
      replace(box, h("p.error", errorText(err)));
      return;
    }
    const result = h("p.status.ok", notice);
    const mark = (stage, label) => {
      const button = h("button", { type: "button", hidden: !canDeliver }, label);
      button.addEventListener("click", () =>
        act(button, result, () => post(`${path}/mark`, { stage })).then((b) => b && showBatch(code, batchId, box, `已标记：${label}`)),
      );
      return button;
    };
    const downloadBox = h("p.status.download");
    // Fetched by the page: progress for the large zips, the server's reason when it refuses (downloads.js).
    const link = (file, label) => {
      const button = h("button", { type: "button", dataset: { file } }, label);
      button.addEventListener("click", async () => {
        button.disabled = true;
        try {
          await download(`${path}/${file}`, downloadBox, { fallbackName: `${batchId}-${file}` });
        } finally {
          button.disabled = false;
        }
      });
      return button;
    };
    replace(
      box,
      h("h3", `批次 ${batch.batch_id}`),
      h("div.actions", link("chsi.zip", "下载学信网上传包"), link("print.zip", "下载打印版"), link("mailing.csv", "下载邮寄清单"), mark("printed", "已打印"), mark("mailed", "已邮寄")),
      downloadBox,
      result,
      table(
        ["申请", "学号", "姓名", "文件名"],
        (batch.applications || []).map((a) => [a.application_id, a.student_number || "—", a.name || "—", a.file_name || "—"]),
      ),
      (batch.refused || []).length
        ? [h("h4", "未能入包"), table(["申请", "原因"], batch.refused.map((r) => [r.application_id, r.reason]))]
        : null,
    );
  }

  load();
  return {};
}

// --- 死信 ------------------------------------------------------------------------------------

export function deadLettersPage(root) {
  const status = h("p.status", { role: "status" });
  const queues = h("div.list");
  const messages = h("div.detail");
  replace(root, h("h2", "死信"), status, queues, messages);
  root.dataset.page = "deadletters";

  async function load() {
    try {
      const data = await get("/deadletters");
      replace(
        queues,
        table(
          ["消费者", "队列", "消息数", ""],
          data.queues.map((q) => [
            q.consumer,
            q.queue,
            String(q.messages),
            h("button.link", { type: "button", on: { click: () => browse(q.consumer) } }, "查看"),
          ]),
          { empty: "没有死信队列" },
        ),
      );
    } catch (err) {
      flash(status, errorText(err), "error");
    }
  }

  async function browse(consumer, notice = "") {
    let data;
    try {
      data = await get(`/deadletters/${seg(consumer)}${query({ limit: 50 })}`);
    } catch (err) {
      flash(status, errorText(err), "error");
      return;
    }
    const box = h("p.status.ok", notice);
    replace(
      messages,
      h("h3", `${consumer} 的死信（${data.messages.length}）`),
      box,
      data.messages.length
        ? data.messages.map((m) => {
            const redrive = h("button", { type: "button", disabled: !m.event_id }, "重新投递");
            const discard = h("button.reject", { type: "button", disabled: !m.event_id }, "丢弃");
            const path = `/deadletters/${seg(consumer)}/${seg(m.event_id || "")}`;
            redrive.addEventListener("click", () =>
              act(redrive, box, () => post(`${path}/redrive`)).then((r) => r && browse(consumer, `已重新投递 ${m.event_id}`)),
            );
            discard.addEventListener("click", () => {
              if (!window.confirm("丢弃后不可恢复，确定？")) return;
              act(discard, box, () => post(`${path}/discard`)).then((r) => r && browse(consumer, `已丢弃 ${m.event_id}`));
            });
            return h(
              "article.card",
              h("header", h("strong", m.type || "（未知类型）"), ` ${m.event_id || "—"} · 申请 ${m.application_id || "—"}`),
              h("p", `原因：${m.reason || "—"} · 尝试 ${m.attempts} 次 · 进入死信 ${fmtTime(m.dead_at)}`),
              h("details", h("summary", "内容"), jsonBlock(m.payload), m.history.length ? jsonBlock(m.history) : null),
              h("div.actions", redrive, discard),
            );
          })
        : h("p.empty", "没有消息"),
    );
    load();
  }

  load();
  return {};
}

// --- 审计日志 ---------------------------------------------------------------------------------

export function auditPage(root) {
  const status = h("p.status", { role: "status" });
  const inputs = {
    operator_id: h("input", { type: "text", maxlength: "64" }),
    action: h("input", { type: "text", maxlength: "64", placeholder: "如 review.decided" }),
    application_id: h("input", { type: "text", maxlength: "64" }),
    since: h("input", { type: "datetime-local" }),
    until: h("input", { type: "datetime-local" }),
    limit: h("input", { type: "number", min: "1", max: "500", value: "100" }),
  };
  const labels = { operator_id: "操作员 ID", action: "操作", application_id: "申请 ID", since: "起", until: "止", limit: "条数" };
  const results = h("div.list");
  const form = h(
    "form.filters",
    Object.entries(inputs).map(([name, input]) => field(labels[name], input)),
    h("button", { type: "submit" }, "搜索"),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    search();
  });
  replace(root, h("h2", "审计日志"), form, status, results);
  root.dataset.page = "audit";

  const iso = (value) => (value ? new Date(value).toISOString() : "");

  async function search() {
    const params = {
      operator_id: inputs.operator_id.value.trim(),
      action: inputs.action.value.trim(),
      application_id: inputs.application_id.value.trim(),
      since: iso(inputs.since.value),
      until: iso(inputs.until.value),
      limit: inputs.limit.value,
    };
    let data;
    try {
      data = await get(`/audit${query(params)}`);
    } catch (err) {
      flash(status, errorText(err), "error");
      return;
    }
    flash(status, `${data.entries.length} 条`);
    replace(
      results,
      table(
        ["时间", "操作员", "角色", "操作", "结果", "对象", "IP"],
        data.entries.map((e) => [fmtTime(e.at), e.email || e.operator_id || "—", e.role || "—", e.action, e.outcome, JSON.stringify(e.target), e.ip || "—"]),
      ),
    );
  }

  search();
  return {};
}
